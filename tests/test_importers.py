"""Importers: FNO MAT-files (v5 and v7.3) and PDEBench HDF5 into the opnet schema.

Every source is a small synthetic file written here in the real layout. Arrays whose value
encodes its own index, ``10000 n + 100 i + j (+ t)``, make the order of samples and the
orientation of every axis visible, so a transposed or flipped import cannot pass.
"""

from __future__ import annotations

import hashlib
import struct

import h5py
import numpy as np
import pytest
import scipy.io
import yaml

from data_gen import GenerationError, generate
from data_gen.importers import ImporterError, Source, import_dataset, main
from opnet.data import h5
from opnet.data.datamodule import GridDataModule


def coded(*shape: int) -> np.ndarray:
    """float64 array with a[n, i, j, ...] = 10000 n + 100 i + j (+ 1000 t for a 4th axis):
    exact in float32 for these sizes, and different under any axis swap or flip."""
    grids = np.meshgrid(*(np.arange(s, dtype=np.float64) for s in shape), indexing="ij")
    weights = (10000.0, 100.0, 1.0, 0.001)[:len(shape)]
    return sum(w * g for w, g in zip(weights, grids, strict=True))


def write_mat5(path, compress=False, **arrays):
    scipy.io.savemat(path, arrays, do_compression=compress)
    return path


def write_mat73(path, compress=False, **arrays):
    """What MATLAB's ``save -v7.3`` writes: an HDF5 file after a 512-byte MAT header, one
    dataset per variable with its axes reversed (column-major storage) and ``MATLAB_class``."""
    with h5py.File(path, "w", userblock_size=512) as f:
        for key, value in arrays.items():
            value = np.asarray(value, np.float64)
            ds = f.create_dataset(key, data=value.T, **({"compression": "gzip", "chunks": True}
                                                         if compress else {}))
            ds.attrs["MATLAB_class"] = np.bytes_("double")
    with open(path, "r+b") as f:
        text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: test HDF5 schema 1.00 ."
        f.write(text.ljust(116) + b"\0" * 8 + struct.pack("<H", 0x0200) + b"IM")
    return path


def read(folder, split):
    out = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            out[name] = obj[()]

    with h5.open_split(h5.split_path(folder, split)) as f:
        f.visititems(visit)
        return out, dict(f.attrs)


def f32(a):
    return np.asarray(a, np.float32)


# ----------------------------------------------------------------------------- FNO Darcy


@pytest.fixture
def darcy_v5(tmp_path):
    rng = np.random.default_rng(0)
    coeff = coded(7, 9, 6)
    sol = rng.standard_normal((7, 9, 6))
    return write_mat5(tmp_path / "darcy.mat", coeff=coeff, sol=sol), coeff, sol


def test_fno_darcy_v5_round_trip_keeps_values_order_and_provenance(darcy_v5, tmp_path):
    path, coeff, sol = darcy_v5
    summary = import_dataset("fno-darcy", tmp_path / "out", path, train="0:4", test="5:")
    train, attrs = read(tmp_path / "out", "train")
    test, _ = read(tmp_path / "out", "test")
    val, _ = read(tmp_path / "out", "val")
    assert train["inputs/coeff"].dtype == np.float32
    np.testing.assert_array_equal(train["inputs/coeff"], f32(coeff[0:4, None]))
    np.testing.assert_array_equal(train["outputs/sol"], f32(sol[0:4, None]))
    np.testing.assert_array_equal(test["inputs/coeff"], f32(coeff[5:7, None]))
    np.testing.assert_array_equal(test["meta/global_index"], [5, 6])
    assert val["inputs/coeff"].shape == (0, 1, 9, 6)  # omitted split: written empty
    np.testing.assert_array_equal(train["coords/x"], np.linspace(0, 1, 9))
    np.testing.assert_array_equal(train["coords/y"], np.linspace(0, 1, 6))
    assert attrs["pde"] == "darcy" and attrs["split"] == "train" and "seed" not in attrs
    config = yaml.safe_load(attrs["generator_config"])
    assert config["importer"] == "fno-darcy"
    assert config["splits"]["train"]["range"] == [0, 4]
    assert config["splits"]["train"]["shapes"] == {"coeff": [7, 9, 6], "sol": [7, 9, 6]}
    assert config["splits"]["train"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert config["splits"]["val"] == {"samples": 0}
    assert (tmp_path / "out" / "import.yaml").read_text() == attrs["generator_config"]
    assert summary.samples == {"train": 4, "val": 0, "test": 2}
    assert "train       4 samples" in summary.table()


@pytest.mark.parametrize("compress", [False, True], ids=["memmap", "zlib-stream"])
def test_v5_variables_larger_than_a_block_stream_to_the_same_bytes(tmp_path, compress):
    """Above the block budget a v5 variable is memory-mapped (or inflated pass by pass when
    compressed) instead of loaded whole; with 1 sample per block the result must be the
    scipy.io.loadmat result, stride included."""
    coeff, sol = coded(5, 11, 8), coded(5, 11, 8)[:, ::-1] * -1.0
    path = write_mat5(tmp_path / "d.mat", compress, coeff=coeff, sol=sol)
    src = Source(path, block_bytes=64)
    block = src.read("coeff", 1, 3, (slice(None, None, 2), slice(1, None, 3)))
    assert not src._loaded  # not through loadmat
    np.testing.assert_array_equal(block, coeff[1:3, ::2, 1::3])
    import_dataset("fno-darcy", tmp_path / "o", path, train="1:5", stride=2, block_mb=1e-5)
    train, _ = read(tmp_path / "o", "train")
    ref = scipy.io.loadmat(path)
    np.testing.assert_array_equal(train["inputs/coeff"], f32(ref["coeff"][1:5, None, ::2, ::2]))
    np.testing.assert_array_equal(train["outputs/sol"], f32(ref["sol"][1:5, None, ::2, ::2]))


@pytest.mark.parametrize("compress", [False, True], ids=["contiguous", "gzip-chunked"])
def test_v73_darcy_transposed_storage_is_read_in_matlab_order(tmp_path, compress):
    coeff, sol = coded(6, 9, 5), coded(6, 9, 5) + 0.5
    path = write_mat73(tmp_path / "d73.mat", compress, coeff=coeff, sol=sol)
    with h5py.File(path, "r") as f:  # the file really is stored transposed
        assert f["coeff"].shape == (5, 9, 6)
    import_dataset("fno-darcy", tmp_path / "o", path, train="0:4", val="4:6", stride=2,
                   block_mb=2e-4)
    train, attrs = read(tmp_path / "o", "train")
    val, _ = read(tmp_path / "o", "val")
    assert train["inputs/coeff"][3, 0, 2, 1] == 10000 * 3 + 100 * 4 + 2  # [n, i, j] = (3, 4, 2)
    np.testing.assert_array_equal(train["inputs/coeff"], f32(coeff[:4, None, ::2, ::2]))
    np.testing.assert_array_equal(val["outputs/sol"], f32(sol[4:, None, ::2, ::2]))
    np.testing.assert_array_equal(train["coords/x"], np.linspace(0, 1, 9)[::2])
    assert yaml.safe_load(attrs["generator_config"])["splits"]["train"]["format"] == \
        "MATLAB v7.3 MAT-file (HDF5)"


def test_cli_reads_train_and_test_from_separate_files(tmp_path, capsys):
    """FNO ships Darcy as two files (smooth1 for training, smooth2 for testing)."""
    a = write_mat5(tmp_path / "smooth1.mat", coeff=coded(5, 7, 7), sol=coded(5, 7, 7))
    b = write_mat73(tmp_path / "smooth2.mat", coeff=coded(4, 7, 7) + 1, sol=coded(4, 7, 7))
    main(["fno-darcy", str(a), "--train", "0:3", "--val", "3:5", "--test-file", str(b),
          "--test", "1:3", "--stride", "3", "--out", str(tmp_path / "o"), "--no-progress"])
    printed = capsys.readouterr().out
    assert "imported fno-darcy" in printed and "smooth2.mat[1:3]" in printed
    assert "inputs/coeff [2, 1, 3, 3]" in printed
    test, attrs = read(tmp_path / "o", "test")
    expected = coded(4, 7, 7)[1:3, None, ::3, ::3] + 1
    np.testing.assert_array_equal(test["inputs/coeff"], f32(expected))
    assert yaml.safe_load(attrs["generator_config"])["splits"]["test"]["file"] == str(b)
    main(["fno-darcy", "--test-file", str(b), "--out", str(tmp_path / "p"), "--no-progress"])
    assert read(tmp_path / "p", "test")[0]["inputs/coeff"].shape == (4, 1, 7, 7)  # all of b


# ----------------------------------------------------------------------------- Burgers, NS


def test_fno_burgers_fields_stride_and_periodic_grid(tmp_path):
    a, u = coded(6, 16), -coded(6, 16)
    path = write_mat5(tmp_path / "burgers_data_R10.mat", a=a, u=u)
    import_dataset("fno-burgers", tmp_path / "o", path, train=":4", test="-2:", stride=4)
    train, attrs = read(tmp_path / "o", "train")
    test, _ = read(tmp_path / "o", "test")
    np.testing.assert_array_equal(train["inputs/u0"], f32(a[:4, None, ::4]))
    np.testing.assert_array_equal(test["outputs/u"], f32(u[4:, None, ::4]))
    np.testing.assert_array_equal(train["coords/x"], [0.0, 0.25, 0.5, 0.75])
    np.testing.assert_array_equal(train["coords/t"], [1.0])
    assert attrs["pde"] == "burgers"


def test_fno_ns_time_last_becomes_time_after_samples(tmp_path):
    a, u = coded(5, 6, 4), coded(5, 6, 4, 7)  # u [N, s, s, T], T = 7
    t = np.arange(1, 8, dtype=np.float64)[None] * 0.5  # MATLAB row vector [1, T]
    path = write_mat73(tmp_path / "ns.mat", a=a, u=u, t=t)
    import_dataset("fno-ns", tmp_path / "o", path, train="0:3", val="3:5", time_stride=2)
    train, attrs = read(tmp_path / "o", "train")
    w = train["outputs/w"]
    assert w.shape == (3, 4, 6, 4)  # [N, T/2, s, s]
    assert w[2, 1, 5, 3] == np.float32(u[2, 5, 3, 2])  # record 2 = the second kept one
    np.testing.assert_array_equal(w, f32(np.moveaxis(u[:3, :, :, ::2], -1, 1)))
    np.testing.assert_array_equal(train["inputs/w0"], f32(a[:3, None]))
    np.testing.assert_array_equal(train["coords/t"], [0.5, 1.5, 2.5, 3.5])
    np.testing.assert_array_equal(train["coords/y"], [0.0, 0.25, 0.5, 0.75])
    assert attrs["pde"] == "navier_stokes"


def test_fno_ns_initial_steps_split_u_into_input_and_output_frames(tmp_path):
    """The FNO 2-D time set-up: the first T_in records in, the next ones out; ``a`` unused
    (the file has none here), times 1..T when the file has no ``t``."""
    u = coded(4, 5, 5, 6)
    path = write_mat5(tmp_path / "ns_u.mat", u=u)
    import_dataset("fno-ns", tmp_path / "o", path, train="0:2", test="2:4", initial_steps=2)
    test, _ = read(tmp_path / "o", "test")
    np.testing.assert_array_equal(test["inputs/w"], f32(np.moveaxis(u[2:, ..., :2], -1, 1)))
    np.testing.assert_array_equal(test["outputs/w"], f32(np.moveaxis(u[2:, ..., 2:], -1, 1)))
    np.testing.assert_array_equal(test["coords/t_in"], [1.0, 2.0])
    np.testing.assert_array_equal(test["coords/t"], [3.0, 4.0, 5.0, 6.0])


# ----------------------------------------------------------------------------- PDEBench


def write_pdebench_1d(path, n=6, t=7, x=12):
    tensor = coded(n, t, x).astype(np.float32)
    with h5py.File(path, "w") as f:
        f["tensor"] = tensor
        f["x-coordinate"] = ((np.arange(x) + 0.5) / x).astype(np.float32)
        f["t-coordinate"] = np.linspace(0, 0.01 * t, t + 1, dtype=np.float32)  # T+1 entries
    return path, tensor


def test_pdebench_1d_tensor_initial_steps_coordinates_and_off_by_one_times(tmp_path):
    path, tensor = write_pdebench_1d(tmp_path / "1D_Advection_Sols_beta0.1.hdf5")
    import_dataset("pdebench", tmp_path / "o", path, train="0:4", val="4:5", test="5:6",
                   initial_steps=3, stride=2)
    train, attrs = read(tmp_path / "o", "train")
    np.testing.assert_array_equal(train["inputs/u"], tensor[:4, :3, ::2])
    np.testing.assert_array_equal(train["outputs/u"], tensor[:4, 3:, ::2])
    with h5py.File(path) as f:
        tc, xc = f["t-coordinate"][()].astype(np.float64), f["x-coordinate"][()]
    np.testing.assert_array_equal(train["coords/t_in"], tc[:3])
    np.testing.assert_array_equal(train["coords/t"], tc[3:7])  # tc[7] has no snapshot
    np.testing.assert_array_equal(train["coords/x"], xc[::2])
    assert attrs["pde"] == "pdebench:1D_Advection_Sols_beta0.1"
    import_dataset("pdebench", tmp_path / "ts", path, train="0:2", initial_steps=1,
                   time_stride=3)
    ts, _ = read(tmp_path / "ts", "train")
    np.testing.assert_array_equal(ts["outputs/u"], tensor[:2, 3::3])  # frames 0 | 3, 6
    np.testing.assert_array_equal(ts["coords/t"], tc[[3, 6]])
    long, _ = write_pdebench_1d(tmp_path / "long.hdf5", n=2, t=12)
    import_dataset("pdebench", tmp_path / "default", long, train="0:2")
    default, attrs = read(tmp_path / "default", "train")
    assert default["inputs/u"].shape == (2, 10, 12) and default["outputs/u"].shape == (2, 2, 12)
    assert yaml.safe_load(attrs["generator_config"])["options"]["initial_steps"] == 10


def test_pdebench_darcy_loads_in_the_datamodule_with_the_darcy_field_names(tmp_path):
    nu = coded(10, 8, 6)
    sol = -coded(10, 8, 6)[:, None]
    path = tmp_path / "2D_DarcyFlow_beta1.0_Train.hdf5"
    with h5py.File(path, "w") as f:
        f["nu"], f["tensor"] = nu.astype(np.float32), sol.astype(np.float32)
        f["x-coordinate"] = (np.arange(8) + 0.5) / 8
        f["y-coordinate"] = (np.arange(6) + 0.5) / 6
    import_dataset("pdebench-darcy", tmp_path / "o", path, train="0:6", val="6:8", test="8:")
    train, _ = read(tmp_path / "o", "train")
    np.testing.assert_array_equal(train["inputs/coeff"], f32(nu[:6, None]))
    np.testing.assert_array_equal(train["outputs/sol"], f32(sol[:6]))
    np.testing.assert_array_equal(train["coords/y"], (np.arange(6) + 0.5) / 6)
    dm = GridDataModule(str(tmp_path / "o"), batch_size=4)  # default fields coeff -> sol
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["x"].shape == (4, 1, 8, 6) and batch["y"].shape == (4, 1, 8, 6)
    assert len(dm.splits["val"]) == 2


def test_datamodule_loads_imported_fno_sets(darcy_v5, tmp_path):
    path, coeff, _ = darcy_v5
    import_dataset("fno-darcy", tmp_path / "d", path, train="0:5", val="5:6", test="6:7")
    dm = GridDataModule(str(tmp_path / "d"), stride=2, batch_size=5)
    dm.setup("fit")
    np.testing.assert_array_equal(dm.splits["train"].x.numpy(), f32(coeff[:5, None, ::2, ::2]))
    assert next(iter(dm.val_dataloader()))["x"].shape == (1, 1, 5, 3)
    ns = write_mat73(tmp_path / "ns.mat", a=coded(4, 8, 8), u=coded(4, 8, 8, 5))
    import_dataset("fno-ns", tmp_path / "n", ns, train="0:2", val="2:3", test="3:4")
    dm = GridDataModule(str(tmp_path / "n"), input_fields=["w0"], output_fields=["w"],
                        batch_size=2)
    batch = next(iter(dm.train_dataloader()))
    assert batch["x"].shape == (2, 1, 8, 8) and batch["y"].shape == (2, 5, 8, 8)
    assert dm.io_spec()["dataset"]["pde"] == "navier_stokes"


# ----------------------------------------------------------------------------- folders


def test_existing_datasets_are_kept_unless_overwrite(darcy_v5, tmp_path):
    path, _, _ = darcy_v5
    out = tmp_path / "gen"
    generate("darcy", out=out, resolution=5, n_train=2, n_val=1, n_test=1, progress=False)
    with pytest.raises(ImporterError, match=r"gen: already holds a dataset \(.*train\.h5.*"
                                            r"--overwrite"):
        import_dataset("fno-darcy", out, path, train="0:2")
    import_dataset("fno-darcy", out, path, train="0:2", overwrite=True)
    assert not (out / "config.yaml").exists()  # the generator's sidecar went with its files
    assert read(out, "train")[0]["inputs/coeff"].shape == (2, 1, 9, 6)
    with pytest.raises(ImporterError, match="already holds a dataset"):
        import_dataset("fno-darcy", out, path, train="0:3")


def test_overwrite_never_deletes_a_source_or_unrelated_files(tmp_path):
    (tmp_path / "a").mkdir()
    raw, _ = write_pdebench_1d(tmp_path / "a" / "train.h5", t=12)  # named like a split file
    with pytest.raises(ImporterError, match=r"train\.h5: is a source of this import"):
        import_dataset("pdebench", tmp_path / "a", raw, train="0:2", overwrite=True)
    assert raw.exists()
    (tmp_path / "b").mkdir()
    other, _ = write_pdebench_1d(tmp_path / "b" / "test_raw.h5", t=12)  # not a split file
    import_dataset("pdebench", tmp_path / "b", other, train="0:2", val="2:3")
    assert other.exists() and read(tmp_path / "b", "train")[0]["inputs/u"].shape == (2, 10, 12)


def test_generator_never_takes_an_imported_folder_for_its_own(darcy_v5, tmp_path):
    path, _, _ = darcy_v5
    import_dataset("fno-darcy", tmp_path / "o", path, train="0:2", val="2:3", test="3:4")
    with pytest.raises(GenerationError, match=r"train\.h5: exists with another configuration"):
        generate("darcy", out=tmp_path / "o", resolution=9, n_train=2, n_val=1, n_test=1,
                 seed=0, progress=False)  # (seed=-1 is refused as a value since issue 15)


def test_a_failed_import_leaves_no_files(tmp_path):
    coeff = coded(6, 5, 5)
    coeff[4, 2, 2] = np.nan
    path = write_mat5(tmp_path / "nan.mat", coeff=coeff, sol=coeff)
    with pytest.raises(ImporterError, match=r"nan\.mat: 'coeff' sample 4 holds NaN or Inf"):
        import_dataset("fno-darcy", tmp_path / "o", path, train="0:3", test="3:6")
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- errors


def _errors(tmp_path):
    v5 = write_mat5(tmp_path / "only_coeff.mat", coeff=coded(4, 5, 5))
    rank = write_mat5(tmp_path / "rank.mat", coeff=coded(5, 8), sol=coded(5, 8))
    shape = write_mat5(tmp_path / "shape.mat", coeff=coded(5, 8, 8), sol=coded(5, 8, 7))
    ok = write_mat5(tmp_path / "ok.mat", coeff=coded(7, 5, 5), sol=coded(7, 5, 5))
    text = tmp_path / "notes.mat"
    text.write_text("these are not arrays\n" * 10)
    broken = tmp_path / "broken.h5"
    broken.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 600)
    pdb, _ = write_pdebench_1d(tmp_path / "pdb.hdf5")
    groups = tmp_path / "groups.h5"
    with h5py.File(groups, "w") as f:
        f["0000/data"] = np.zeros((3, 4))
    ns = write_mat73(tmp_path / "ns73.mat", a=coded(3, 4, 4), u=coded(3, 4, 4))
    return [
        ("fno-darcy", v5, {"train": "0:2"},
         r"only_coeff\.mat: no key 'sol' \(the fno-darcy format needs it.*keys present: "
         r"\['coeff'\]"),
        ("fno-darcy", rank, {"train": "0:2"},
         r"rank\.mat: 'coeff' has shape \[5, 8\], expected \[N, s, s\] \(fno-darcy\)"),
        ("fno-darcy", shape, {"train": "0:2"},
         r"shape\.mat: 'sol' has shape \[5, 8, 7\], expected the shape of 'coeff' = \[5, 8, 8\]"),
        ("fno-ns", ns, {"train": "0:2"},
         r"ns73\.mat: 'u' has shape \[3, 4, 4\], expected \[N, s, s, T\].*MATLAB v7\.3"),
        ("fno-darcy", ok, {"train": "0:100"},
         r"ok\.mat: --train 0:100 is outside the file's 7 samples"),
        ("fno-darcy", ok, {"train": "-9:"}, r"--train -9: is outside the file's 7 samples"),
        ("fno-darcy", ok, {"train": "4:4"}, r"--train 4:4 selects no samples"),
        ("fno-darcy", ok, {"train": "0:6:2"}, r"--train '0:6:2': expected START:STOP"),
        ("fno-darcy", ok, {"train": "0:4", "test": "3:7"},
         r"ok\.mat: --train 0:4 and --test 3:7 overlap; pass --allow-overlap"),
        ("fno-darcy", ok, {}, r"no split selected"),
        ("fno-darcy", text, {"train": "0:1"},
         r"notes\.mat: unknown format: not a MATLAB v5/v7\.3 MAT-file nor an HDF5 file"),
        ("fno-darcy", tmp_path / "absent.mat", {"train": "0:1"}, r"absent\.mat: no such file"),
        ("pdebench", broken, {"train": "0:1"}, r"broken\.h5: not a readable HDF5 file"),
        ("pdebench", pdb, {"train": "0:1", "initial_steps": 7},
         r"pdb\.hdf5: initial_steps=7 but 'tensor' has 7 time frames"),
        ("pdebench", groups, {"train": "0:1"},
         r"groups\.h5: no key 'tensor' .*keys present: \['0000'\]"),
        ("pdebench", groups, {"train": "0:1", "keys": ["0000"]},
         r"groups\.h5: '0000' is an HDF5 group, expected an array"),
        ("fno-darcy", ok, {"train": "0:1", "time_stride": 2}, r"apply to the time-series"),
        ("fno-darcy", ok, {"train": "0:1", "fields": {"a": "x"}},
         r"--field \['a'\] names no source key; roles: \['coeff', 'sol'\]"),
        ("fno-heat", ok, {"train": "0:1"}, r"unknown format 'fno-heat'"),
    ]


def test_each_bad_input_gets_an_error_naming_file_key_and_expectation(tmp_path):
    for i, (fmt, path, kwargs, pattern) in enumerate(_errors(tmp_path)):
        with pytest.raises(ImporterError, match=pattern):
            import_dataset(fmt, tmp_path / f"out{i}", path, **kwargs)
        assert not (tmp_path / f"out{i}").exists()


def test_cli_reports_errors_without_a_traceback(tmp_path, capsys):
    path = write_mat5(tmp_path / "only_coeff.mat", coeff=coded(4, 5, 5))
    with pytest.raises(SystemExit) as exit_info:
        main(["fno-darcy", str(path), "--train", "0:2", "--out", str(tmp_path / "o")])
    assert exit_info.value.code == 2
    assert "error: " in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "python -m data_gen.importers pdebench-darcy" in capsys.readouterr().out
