"""Data: raw sources, synthetic generators, raw formats -> common VOC/CSV form, torch Dataset."""
