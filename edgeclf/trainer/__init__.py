"""edgeclf's trainer: from a folder of photos to a run folder (``model.keras`` + ``manifest.json``).

Importing this package is cheap: TensorFlow and Keras are imported inside the functions that need
them, so the command line and the configuration dataclasses work without the ``train`` extra.

    from edgeclf.trainer.train import TrainConfig, train
    run_dir = train(TrainConfig(data="data/demo", preset="default"))

(The function is deliberately not re-exported here: ``edgeclf.trainer.train`` stays the module.)
"""
