"""Hotline text intelligence: intent classifiers, place and urgency extraction, and the classify stage."""

from classifiers.baseline import BaselineClassifier
from classifiers.stage import IntentModel, classify, make_classify_stage

__all__ = ["BaselineClassifier", "IntentModel", "classify", "make_classify_stage"]
