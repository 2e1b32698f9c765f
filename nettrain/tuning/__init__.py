"""Hyperparameter search (`nettrain tune`): a space of config values (space.py), an Optuna study
(study.py), trials run as `nettrain fit` child processes (trial.py), and the search folder's
trials.csv and best.yaml (report.py); search.py ties them together."""
