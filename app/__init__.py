"""The Gradio web demo: python -m app."""
