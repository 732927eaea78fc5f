from qdet import cli


def test_fingerprint_follows_inputs_and_params_but_not_thread_counts(tmp_path):
    data = tmp_path / "processed"
    data.mkdir()
    (data / "train.csv").write_text("a.ppm,10,10,sign,0,0,4,4\n")
    model = tmp_path / "float.pt"
    model.write_bytes(b"weights v1")
    resolved = {"seed": 0, "train": {"lr": 0.001, "threads": 2, "workers": 0}}

    first = cli.fingerprint(resolved, "seed", "train", inputs=(data, model))
    fewer_threads = {"seed": 0, "train": {"lr": 0.001, "threads": 1, "workers": 2}}
    assert cli.fingerprint(fewer_threads, "seed", "train", inputs=(data, model)) == first

    model.write_bytes(b"weights v2")  # e.g. train reran: QAT must not resume the old run
    assert cli.fingerprint(resolved, "seed", "train", inputs=(data, model)) != first
    model.write_bytes(b"weights v1")
    (data / "train.csv").write_text("a.ppm,10,10,sign,0,0,5,5\n")
    assert cli.fingerprint(resolved, "seed", "train", inputs=(data, model)) != first
    (data / "train.csv").write_text("a.ppm,10,10,sign,0,0,4,4\n")
    assert cli.fingerprint(resolved, "seed", "train", inputs=(data, model)) == first
    other_lr = {"seed": 0, "train": {"lr": 0.01, "threads": 2, "workers": 0}}
    assert cli.fingerprint(other_lr, "seed", "train", inputs=(data, model)) != first
