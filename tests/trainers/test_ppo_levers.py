"""The PPO update's speed and memory levers change nothing but speed and memory: micro-batches add up to
the minibatch's gradient, gradient checkpointing recomputes the same gradients, fused AdamW takes the same
step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.trainers.conftest import tiny_policy_cfg
from tests.trainers.fake_env import FakeReachVectorEnv
from vla_razor.errors import BadInputError
from vla_razor.policies import build_policy
from vla_razor.trainers.common import make_optimizer
from vla_razor.trainers.ppo import MinibatchData, PPOSettings, accumulate_minibatch, train_ppo

SETTINGS = dict(lr=1e-3, num_iterations=1, num_steps=4, update_epochs=2, minibatch_size=8, save_every=0)


def _minibatch(policy, n: int = 8) -> MinibatchData:
    env = FakeReachVectorEnv(num_envs=n, image_size=32)
    obs, _ = env.reset(seed=0)
    batch = policy.prepare(obs, list(obs["instruction"]))
    out = policy.act(batch, generator=torch.Generator().manual_seed(0))
    rng = np.random.default_rng(0)
    noise = torch.as_tensor(rng.normal(0, 0.4, n), dtype=torch.float32)
    return MinibatchData(
        batch.to("cpu"),
        out.token_ids.cpu(),
        out.log_prob.cpu() + noise,  # as if the policy had moved since sampling: ratios != 1, some clipped
        torch.as_tensor(rng.normal(size=n), dtype=torch.float32),
        out.value.cpu(),
        torch.as_tensor(rng.normal(size=n), dtype=torch.float32),
    )


def _gradients(policy, settings: PPOSettings, data: MinibatchData) -> tuple[dict, dict]:
    policy.zero_grad(set_to_none=True)
    policy.train()
    metrics = accumulate_minibatch(policy, settings, data, pg_active=True)
    grads = {n: p.grad.clone() for n, p in policy.named_parameters() if p.grad is not None}
    return grads, metrics


@pytest.mark.parametrize("kl_coef", [0.0, 0.1])
def test_micro_batches_give_the_minibatch_gradient(kl_coef: float) -> None:
    policy = build_policy(tiny_policy_cfg(finetune="lora", lora={"r": 4, "alpha": 8}))
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.1)  # pi != pi0, so the KL term has a gradient
    data = _minibatch(policy)
    whole, whole_metrics = _gradients(policy, PPOSettings(**SETTINGS, kl_coef=kl_coef), data)
    # 8 = 3 + 3 + 2: unequal parts must be weighted by their size.
    parts, parts_metrics = _gradients(
        policy, PPOSettings(**SETTINGS, kl_coef=kl_coef, micro_batch_size=3), data
    )
    assert whole.keys() == parts.keys() and len(whole) > 4
    assert any(float(g.abs().max()) > 1e-4 for g in whole.values())
    for name, grad in whole.items():
        torch.testing.assert_close(parts[name], grad, rtol=1e-4, atol=1e-6, msg=name)
    assert whole_metrics.keys() == parts_metrics.keys()
    for key, value in whole_metrics.items():
        assert parts_metrics[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key
    assert 0.0 < whole_metrics["clipfrac"] < 1.0


def test_gradient_checkpointing_recomputes_the_same_gradients() -> None:
    policy = build_policy(tiny_policy_cfg(finetune="full"))
    data = _minibatch(policy)
    settings = PPOSettings(**SETTINGS)
    plain, _ = _gradients(policy, settings, data)
    calls = []
    layer = policy.model.language_model.model.layers[0]
    # A pre-hook: the recomputation stops as soon as it has what the backward pass needs, before the
    # layer returns, so a forward hook would not see it.
    handle = layer.register_forward_pre_hook(lambda *_: calls.append(1))
    _gradients(policy, settings, data)
    assert len(calls) == 1  # one teacher-forced pass per minibatch
    calls.clear()
    policy.enable_gradient_checkpointing()
    checkpointed, _ = _gradients(policy, settings, data)
    handle.remove()
    assert len(calls) == 2, "the layer was not recomputed in the backward pass"
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, rtol=1e-5, atol=1e-7, msg=name)


def test_fused_adamw_takes_the_same_step() -> None:
    torch.manual_seed(0)
    weights = [torch.randn(5, 3), torch.randn(7)]
    grads = [torch.randn_like(w) for w in weights]
    results = []
    for fused in (False, True):
        params = [torch.nn.Parameter(w.clone()) for w in weights]
        optimizer, _ = make_optimizer(params, 1e-2, 0.01, 0, 10, fused=fused)
        assert bool(optimizer.defaults["fused"]) is fused
        for _ in range(3):
            for p, g in zip(params, grads, strict=True):
                p.grad = g.clone()
            optimizer.step()
        results.append([p.detach() for p in params])
    assert not torch.equal(results[0][0], weights[0])
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_ppo_runs_with_every_lever_on(tmp_path) -> None:
    runs = {}
    for name, levers in {
        "plain": {},
        "levers": {"micro_batch_size": 3, "gradient_checkpointing": True, "fused_optimizer": True},
    }.items():
        policy = build_policy(tiny_policy_cfg(finetune="full"))
        env = FakeReachVectorEnv(num_envs=4, horizon=2, image_size=32)
        settings = PPOSettings(**SETTINGS, target_kl=None, **levers)
        runs[name] = train_ppo(policy, env, settings, tmp_path / name, {}, progress=False)
    for key in ("pg_loss", "v_loss", "entropy", "approx_kl"):
        assert runs["levers"][key] == pytest.approx(runs["plain"][key], rel=1e-3, abs=1e-5), key


def test_bad_lever_settings() -> None:
    with pytest.raises(BadInputError, match=r"trainer.micro_batch_size must be a positive integer.*got 0"):
        PPOSettings(**SETTINGS, micro_batch_size=0)
    with pytest.raises(BadInputError, match="unknown trainer setting.*micro_batch"):
        PPOSettings.from_mapping({**SETTINGS, "micro_batch": 4})
