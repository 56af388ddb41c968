"""NDArray (pyrt.wire.ndarray): an array without NumPy — checked on construction, read back as
lists, handed to NumPy without a copy; dtypes that cannot travel are refused by name."""

from __future__ import annotations

import numpy as np
import pytest

from pyrt.wire.ndarray import NDArray, dtype_itemsize, is_numpy_array


def test_an_array_is_its_dtype_shape_and_bytes() -> None:
    array = NDArray("<i2", (2, 2), b"\x01\x00\x02\x00\x03\x00\x04\x00")
    assert (array.dtype, array.shape, array.size, array.nbytes) == ("<i2", (2, 2), 4, 8)
    assert array.data.readonly
    assert array.tolist() == [[1, 2], [3, 4]]
    assert array == NDArray("<i2", [2, 2], bytearray(b"\x01\x00\x02\x00\x03\x00\x04\x00"))
    assert array != NDArray(">i2", (2, 2), b"\x01\x00\x02\x00\x03\x00\x04\x00")


def test_tolist_reads_byte_orders_floats_complex_and_bools_as_numpy_does() -> None:
    for source in [
        np.arange(6, dtype=">f4").reshape(2, 3),
        np.arange(6, dtype="<f8"),
        np.array([1 + 2j, 3 - 4j], dtype="<c16"),
        np.array([[True], [False]]),
        np.array(5, dtype="<u8"),
        np.arange(-3, 3, dtype="|i1"),
    ]:
        array = NDArray(source.dtype.str, source.shape, source.tobytes())
        assert array.tolist() == source.tolist()


def test_to_numpy_shares_the_bytes() -> None:
    array = NDArray("<f4", (3,), np.array([1, 2, 3], dtype="<f4").tobytes())
    as_numpy = array.to_numpy()
    assert as_numpy.dtype == np.dtype("<f4")
    assert np.shares_memory(as_numpy, np.frombuffer(array.data, dtype="<f4"))
    assert as_numpy.tolist() == [1.0, 2.0, 3.0]


def test_tolist_names_the_way_out_for_dtypes_it_does_not_read() -> None:
    with pytest.raises(TypeError, match="to_numpy"):
        NDArray("<M8[s]", (1,), b"\x00" * 8).tolist()


@pytest.mark.parametrize(
    ("dtype", "size"),
    [
        ("<f4", 4),
        ("|b1", 1),
        ("|u1", 1),
        (">c16", 16),
        ("<M8[ns]", 8),
        ("<m8[s]", 8),
        ("|S10", 10),
        ("<U3", 12),
    ],
)
def test_plain_dtypes_travel(dtype: str, size: int) -> None:
    assert dtype_itemsize(dtype) == size
    assert np.dtype(dtype).itemsize == size


@pytest.mark.parametrize(
    "dtype", ["|O8", "<f3", "f4", "|f4", "<M8", "<i4[ns]", "<f4,<i4", 4, None, "<" + "9" * 10]
)
def test_other_dtypes_are_refused_naming_the_rule(dtype: object) -> None:
    with pytest.raises(ValueError, match="dtype must be"):
        dtype_itemsize(dtype)


def test_a_shape_must_match_the_bytes() -> None:
    with pytest.raises(ValueError, match="holds 8 bytes, got 7"):
        NDArray("<f4", (2,), b"\x00" * 7)
    with pytest.raises(ValueError, match="non-negative"):
        NDArray("<f4", (-1,), b"")
    with pytest.raises(ValueError, match="at most 64"):
        NDArray("<f4", (1,) * 65, b"\x00" * 4)


def test_numpy_arrays_are_recognised_without_importing_numpy() -> None:
    assert is_numpy_array(np.zeros(2))
    assert not is_numpy_array(np.float32(1))
    assert not is_numpy_array([1, 2])
