"""The API layer: the Captum-style explainer, its arguments, the explanation record, realisations,
the scoring path shared with the benchmark, baseline maps, the Quantus adapter and zero-shot models."""
