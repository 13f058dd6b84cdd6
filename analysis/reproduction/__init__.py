"""Reproduction harness: differential testing of reimplemented models against a reference.

Public pieces: the case format (:mod:`.case`), comparators (:mod:`.comparators`), layer
localization (:mod:`.localize`), preprocessing and export parity (:mod:`.parity`), weight
porting (:mod:`.porting`) and the runner (:mod:`.runner`). The library of real defects lives in
:mod:`analysis.reproduction.cases`.
"""

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, SkipCase, case

__all__ = ["CaseContext", "Comparison", "ReproCase", "SkipCase", "case"]
