"""The sampler: timestep grids (`schedule`), guidance (`guidance`), seeded noise (`noise`) and the loop (`denoise`)."""
from .denoise import Cancelled, denoise
from .guidance import GuidanceStep, guidance_schedule, stg_strategy
from .noise import derived_generator, initial_noise, make_generator
from .schedule import SchedulerConfig, euler_step, make_timesteps

__all__ = ["Cancelled", "GuidanceStep", "SchedulerConfig", "denoise", "derived_generator", "euler_step",
           "guidance_schedule", "initial_noise", "make_generator", "make_timesteps", "stg_strategy"]
