"""The steps that commands share, one floor below them: a training run, a study (train a sweep, evaluate
every checkpoint, record it), and the reading of a verb's config blocks. Commands stay thin and never
import one another; trainers and evaluation stay peers, wired together here."""
