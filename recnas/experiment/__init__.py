"""Experiment layer: configs, the stage runner, reports and the command-line interface."""
