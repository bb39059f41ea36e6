"""The VLA at inference: action language, prompts, backends, validators, the closed loop and VQA."""
