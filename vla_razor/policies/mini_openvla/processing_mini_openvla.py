"""Mini OpenVLA processor (remote code, stand-alone): PIL images -> [B, 6, 224, 224] + prompt tokens."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import BatchFeature, ProcessorMixin
from transformers.image_processing_utils import ImageProcessingMixin

# DINOv2 (ImageNet) and SigLIP normalisations, the two halves of OpenVLA's fused input.
_MEANS = ((0.485, 0.456, 0.406), (0.5, 0.5, 0.5))
_STDS = ((0.229, 0.224, 0.225), (0.5, 0.5, 0.5))


class MiniOpenVLAImageProcessor(ImageProcessingMixin):
    model_input_names = ["pixel_values"]

    def __init__(self, image_size: int = 224, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.image_size = image_size

    def preprocess(
        self, images: Image.Image | list[Image.Image], return_tensors: str | None = None, **_: Any
    ) -> BatchFeature:
        if isinstance(images, Image.Image):
            images = [images]
        out = []
        for img in images:
            img = img.convert("RGB")
            if img.size != (self.image_size, self.image_size):
                img = img.resize((self.image_size, self.image_size), Image.Resampling.BICUBIC)
            x = np.asarray(img, dtype=np.float32) / 255.0
            halves = [(x - np.array(m)) / np.array(s) for m, s in zip(_MEANS, _STDS, strict=True)]
            out.append(np.concatenate(halves, axis=-1).transpose(2, 0, 1))
        return BatchFeature(
            data={"pixel_values": np.stack(out).astype(np.float32)}, tensor_type=return_tensors
        )

    def __call__(self, images: Any, **kwargs: Any) -> BatchFeature:
        return self.preprocess(images, **kwargs)


class MiniOpenVLAProcessor(ProcessorMixin):
    attributes = ["image_processor", "tokenizer"]
    image_processor_class = "AutoImageProcessor"
    tokenizer_class = "AutoTokenizer"

    def __call__(
        self,
        text: str | list[str],
        images: Any,
        padding: bool | str = False,
        return_tensors: str = "pt",
        **_: Any,
    ) -> BatchFeature:
        pixel_values = self.image_processor(images, return_tensors=return_tensors)["pixel_values"]
        text_inputs = self.tokenizer(text, return_tensors=return_tensors, padding=padding)
        if pixel_values.shape[0] != text_inputs["input_ids"].shape[0]:
            raise ValueError("batch size mismatch between images and text")
        return BatchFeature(data={**text_inputs, "pixel_values": torch.as_tensor(pixel_values)})
