import pytest
import torch

from noisyseg.detect import LossDetector
from noisyseg.errors import ConfigError
from noisyseg.refurbish import Refurbisher
from noisyseg.train import TrainConfig, Trainer


def test_pseudo_labels_from_the_best_weights_not_the_current_ones(echo_small):
    trainer = Trainer(TrainConfig(epochs=2, batch_size=8, threads=1,
                                  model_options={"width": 4}), echo_small)
    trainer.fit()  # ends with the best weights loaded
    idx = trainer.train_idx.numpy()[:4]
    best = trainer.predict_logits(idx)
    with torch.no_grad():  # the current weights drift away from the best ones
        for p in trainer.model.parameters():
            p.add_(0.5)
    current = trainer.predict_logits(idx)
    assert not torch.allclose(best, current)
    from_best = Refurbisher(LossDetector(), pseudo_from="best")._logits(trainer, idx)
    from_current = Refurbisher(LossDetector())._logits(trainer, idx)
    torch.testing.assert_close(from_best, best)
    torch.testing.assert_close(from_current, current)
    # and the trainer keeps training from its current weights
    torch.testing.assert_close(trainer.predict_logits(idx), current)


def test_pseudo_from_is_validated():
    with pytest.raises(ConfigError, match="pseudo_from"):
        Refurbisher(LossDetector(), pseudo_from="oracle")
