"""Steering by activation addition: grids of features x strengths x prompts, and how well
steering moves images toward a feature's explanation (`metrics`)."""

from .grid import SteeringRun, run_steering, steering_grid
from .scale import site_token_norm

__all__ = ["SteeringRun", "run_steering", "site_token_norm", "steering_grid"]
