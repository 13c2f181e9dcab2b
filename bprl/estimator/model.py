"""The CNN-GRU network (after Eom et al., Sensors 2020, 20(8):2338) and its parameter count.

>>> import torch
>>> from bprl.estimator.config import ModelConfig
>>> cfg = ModelConfig(window_s=4.0, conv_channels=[8, 8], conv_kernels=[5, 3], pools=[4, 4], hybrid=False)
>>> net = CnnGruNet(cfg)
>>> net(torch.zeros(3, 2, 500)).shape
torch.Size([3, 2])
"""

from __future__ import annotations

import torch
from torch import nn

from bprl.errors import EstimatorError
from bprl.estimator.config import ModelConfig

__all__ = ["CnnGruNet", "count_parameters"]


class CnnGruNet(nn.Module):
    """CNN feature extractor + bidirectional GRU + attention pooling + SBP/DBP regression head.

    ``forward(x, feats)`` takes per-window z-normalised signals ``x`` of shape
    (batch, 2, window_len) (channel 0 ECG, 1 PPG) and, for the hybrid variant,
    raw features ``feats`` (batch, k) in the order of ``config.feature_columns``; it returns
    (batch, 2) = (SBP, DBP) in mmHg. Label and feature normalisation live in
    buffers, so a saved state dict (and an ONNX export) is self-contained.

    With ``config.feature_skip`` (hybrid only) the output is a linear function of the
    normalised features plus the CNN-GRU head's residual; the head's last layer starts at
    zero, so training starts from the linear model and the waveform branch adds only what
    lowers the loss. With ``config.range_head`` a second head classifies the BP range
    (:data:`bprl.estimator.ranges.BP_RANGES`) from the same input (:meth:`forward_with_ranges`);
    ``forward`` and the ONNX export give the regression only.

    Args:
        config: the architecture and input layout.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        blocks: list[nn.Module] = []
        c_in = 2
        for c_out, k, p in zip(config.conv_channels, config.conv_kernels, config.pools, strict=True):
            blocks += [
                nn.Conv1d(c_in, c_out, k, padding=k // 2),
                nn.BatchNorm1d(c_out),
                nn.ReLU(),
                nn.MaxPool1d(p),
            ]
            c_in = c_out
        self.cnn = nn.Sequential(*blocks)
        self.gru = nn.GRU(c_in, config.gru_hidden, batch_first=True, bidirectional=True)
        d = 2 * config.gru_hidden
        self.attention = nn.Sequential(nn.Linear(d, d // 2), nn.Tanh(), nn.Linear(d // 2, 1))
        self.head = nn.Sequential(
            nn.Linear(d + config.n_features, config.head_hidden),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.head_hidden, 2),
        )
        self.range_logits: nn.Linear | None = None
        if config.range_head:
            from bprl.estimator.ranges import BP_RANGES

            self.range_logits = nn.Linear(d + config.n_features, len(BP_RANGES))
        self.skip: nn.Linear | None = None
        if config.hybrid and config.feature_skip:
            self.skip = nn.Linear(config.n_features, 2)
            nn.init.zeros_(self.head[-1].weight)
            nn.init.zeros_(self.head[-1].bias)
        self.register_buffer("label_mean", torch.zeros(2))
        self.register_buffer("label_sd", torch.ones(2))
        self.register_buffer("feat_mean", torch.zeros(max(config.n_features, 1)))
        self.register_buffer("feat_sd", torch.ones(max(config.n_features, 1)))

    def _trunk(self, x: torch.Tensor, feats: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The head's input (pooled GRU output and, hybrid, normalised features) and the features alone."""
        h = self.cnn(x).transpose(1, 2)  # (B, T, C)
        h0 = torch.zeros(2, h.shape[0], self.config.gru_hidden, dtype=h.dtype, device=h.device)
        out, _ = self.gru(h, h0)  # (B, T, 2H)
        w = torch.softmax(self.attention(out), dim=1)  # (B, T, 1)
        pooled = (w * out).sum(dim=1)
        if not self.config.hybrid:
            return pooled, None
        if feats is None:
            raise EstimatorError("hybrid CNN-GRU model needs the step features")
        z = (feats - self.feat_mean) / self.feat_sd
        return torch.cat([pooled, z], dim=1), z

    def forward_with_ranges(
        self, x: torch.Tensor, feats: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Label-normalised (SBP, DBP) and, with ``range_head``, the BP-range logits (batch, 4).

        Raises:
            EstimatorError: the model is hybrid and ``feats`` is None.
        """
        trunk, z = self._trunk(x, feats)
        out = self.head(trunk)
        if self.skip is not None and z is not None:
            out = out + self.skip(z)
        return out, (self.range_logits(trunk) if self.range_logits is not None else None)

    def forward_normalised(self, x: torch.Tensor, feats: torch.Tensor | None = None) -> torch.Tensor:
        """Output in label-normalised units ((y - label_mean) / label_sd), shape (batch, 2).

        Raises:
            EstimatorError: the model is hybrid and ``feats`` is None.
        """
        return self.forward_with_ranges(x, feats)[0]

    def forward(self, x: torch.Tensor, feats: torch.Tensor | None = None) -> torch.Tensor:
        """SBP and DBP in mmHg, shape (batch, 2)."""
        return self.forward_normalised(x, feats) * self.label_sd + self.label_mean


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
