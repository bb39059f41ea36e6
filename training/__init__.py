"""Data and training: dataset readers/writers, segmentation, labelers, verbalize CLI, LoRA finetune, tiny model."""
