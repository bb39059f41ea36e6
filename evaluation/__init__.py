"""The paper's studies as commands (ARCHITECTURE.md: it may import policy, training and robot; nothing imports it).

    python -m evaluation.trials --suite fig5 --policy scripted --trials 30 --out results/   # Fig. 5 trials
    python -m evaluation.vqa ...                                                          # VQA retention
    python -m evaluation.report results/                                                  # tables + figures
"""
