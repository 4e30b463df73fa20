"""Training a Fader Network on labelled images, and judging it.

    config.py    TrainConfig: every knob of a run, declared once; the presets by image size
    sources.py   labelled image sources (labels.csv, CelebA's attribute file, with_/without_ folders)
    images.py    the decoded-image cache
    data.py      the dataset: labels joined to the cache, the split, the batches
    loop.py      the Trainer: one step of the paper's method, classifiers, checkpoints, previews
    run.py       a whole run: its time budget, resuming, torchrun, the summary; `fader eval`
    classifiers.py  the evaluation classifier and the guide: built, trained (on faded faces too)
    evaluate.py  the run's report: swap accuracy per direction, clarity, sharpness, reconstruction
    metrics.py   metrics.jsonl (and TensorBoard's files) written, and read back as series
    plot.py      the curves drawn (`fader plot`, the page of `fader serve`)
    card.py      the model card (README.md with the Hub's metadata) of a run
    toyfaces.py  generated cartoon faces with exact counterfactuals (`fader demo`, tests, benchmarks)

Kept free of heavy imports here: `fader --help` reads config.py.
"""
