"""The adversarial term both trainers (face generator, texture inpainter) share.

The paper trains with WGAN-GP; faceheal uses the hinge loss on a spectrally normalised PatchGAN over
(RGB, hole) instead (faceheal/model/discriminator.py). The discriminator trains from step 0, so it is
warmed up before the trainer lets it steer the network (`--adv-start`); Adam with beta1 0, the usual
choice for a GAN's critic.
"""
from __future__ import annotations

import torch

from faceheal.model.discriminator import PatchDiscriminator
from faceheal.train.losses import hinge_d_loss, hinge_g_loss


class Adversary:
    def __init__(self, lr: float, device):
        self.disc = PatchDiscriminator().to(device).train()
        self.opt = torch.optim.Adam(self.disc.parameters(), lr=lr, betas=(0.0, 0.99))

    def generator_loss(self, fake: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """The network's hinge term for its repair `fake` (gradients flow into the network)."""
        return hinge_g_loss(self.disc(fake, hole))

    def step(self, real: torch.Tensor, fake: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """One discriminator update on the real image and the (detached) repair; its hinge loss."""
        loss = hinge_d_loss(self.disc(real, hole), self.disc(fake.detach(), hole))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss

    @staticmethod
    def state(adversary: "Adversary | None") -> dict:
        """The checkpoint's "disc" and "opt_d" entries (None without an adversary)."""
        if adversary is None:
            return {"disc": None, "opt_d": None}
        return {"disc": adversary.disc.state_dict(), "opt_d": adversary.opt.state_dict()}

    def load(self, state: dict) -> None:
        """Restore from a checkpoint that has a discriminator (one trained without keeps this fresh one)."""
        if state.get("disc"):
            self.disc.load_state_dict(state["disc"])
            self.opt.load_state_dict(state["opt_d"])


def adversary(weight: float, lr: float, device) -> Adversary | None:
    """The adversary a run asks for (`--adv-weight` above 0), else None."""
    return Adversary(lr, device) if weight > 0 else None
