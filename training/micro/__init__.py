"""The micro VLM2VLA: the whole method at a scale that trains on two CPU cores.

world.py  the generated "world" (scene VQA and multilingual facts from the simulator)
base.py   the small Gemma 3 VLM and its full-parameter pretraining on the world
__main__  the recipe: world -> base -> expert episodes -> D_lan -> LoRA adapters
"""
