"""``qdet-predict``: an int8 or float artifact (or a registered model) run on a user's images,
folders or videos. Needs none of the training code: the CLI and the predictor only."""
