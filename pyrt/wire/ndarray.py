"""An n-dimensional array as it travels on the binary binding, with or without NumPy.

A publication whose data holds a NumPy array (on the binary binding, docs/protocol.md) arrives as
a NumPy array where NumPy can be imported, and as an :class:`NDArray` where it cannot (Pyodide
without the ``numpy`` package). An :class:`NDArray` is the array's description and bytes, as sent:

- ``dtype``: NumPy's ``dtype.str``, byte order included (``"<f4"``, ``">i2"``, ``"|u1"``);
- ``shape``: a tuple of non-negative ints (``()`` for a 0-d array);
- ``data``: a read-only :class:`memoryview` of the raw bytes, C order.

:meth:`NDArray.to_numpy` gives the NumPy array (one ``numpy.frombuffer``, no copy);
:meth:`NDArray.tolist` the nested lists NumPy's ``tolist`` would give, for the dtypes the ``struct``
module reads (bool, ints, floats, complex). In the browser, ``pyrt.browser.typed_array`` hands it
to JavaScript as a typed array in one bulk copy.

Which dtypes travel: booleans, signed and unsigned ints, floats and complex numbers of any size
NumPy has, datetimes and timedeltas (``M8[ns]``, ``m8[s]``...), and fixed-size bytes, text and
void (``S10``, ``U5``, ``V16``). Object arrays and structured dtypes are refused (they cannot be
described without pickling). Pure: imports nothing but the standard library (NumPy only inside
:meth:`NDArray.to_numpy`).
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Iterator
from typing import Any, Final

__all__ = ["DTYPE_RULE", "NDArray", "dtype_itemsize", "is_numpy_array"]

_DTYPE = re.compile(r"([<>|=])([biufcMmSUV])(\d{1,6})(\[[a-zA-Z]{1,2}\])?")
#: What a dtype that travels looks like.
DTYPE_RULE: Final = (
    "dtype must be NumPy's dtype.str of a plain dtype: byte order (<, >, |), kind (b i u f c M m S U V), "
    "size (in bytes; in characters for U), e.g. '<f4', '|u1', '<M8[ns]' (no object or structured dtypes)"
)
_SIZES: Final = {
    "b": (1,),
    "i": (1, 2, 4, 8),
    "u": (1, 2, 4, 8),
    "f": (2, 4, 8, 10, 12, 16),
    "c": (8, 16, 20, 24, 32),
}
_STRUCT: Final = {
    ("b", 1): "?",
    ("i", 1): "b",
    ("i", 2): "h",
    ("i", 4): "i",
    ("i", 8): "q",
    ("u", 1): "B",
    ("u", 2): "H",
    ("u", 4): "I",
    ("u", 8): "Q",
    ("f", 2): "e",
    ("f", 4): "f",
    ("f", 8): "d",
    ("c", 8): "f",
    ("c", 16): "d",
}
#: At most this many dimensions (NumPy's own limit is 64).
MAX_DIMS: Final = 64


def dtype_itemsize(dtype: Any) -> int:
    """The bytes of one element of ``dtype`` (a ``dtype.str``); :class:`ValueError` naming the
    rule when it is not one that travels."""
    match = _DTYPE.fullmatch(dtype) if isinstance(dtype, str) else None
    if match is None:
        raise ValueError(f"{DTYPE_RULE}; got {str(dtype)[:40]!r}")
    order, kind, size_text, unit = match.groups()
    size = int(size_text)
    if kind in _SIZES and size not in _SIZES[kind]:
        raise ValueError(f"{DTYPE_RULE}; got {dtype!r}")
    if (kind in "Mm") != (unit is not None) or (kind in "Mm" and size != 8):
        raise ValueError(f"{DTYPE_RULE}; got {dtype!r}")
    if order == "|" and kind not in "bSV" and size != 1:
        raise ValueError(f"{DTYPE_RULE}; a {size}-byte {kind!r} needs a byte order, got {dtype!r}")
    return size * 4 if kind == "U" else size  # text: its size counts characters (UCS-4)


def is_numpy_array(value: Any) -> bool:
    """Whether ``value`` is a NumPy ``ndarray`` (or subclass), without importing NumPy."""
    kind = type(value)
    return kind.__module__ == "numpy" and kind.__name__ == "ndarray"


class NDArray:
    """An array received on the binary binding where NumPy is not available (see the module
    docstring). Built by the codec, or by you to send an array without NumPy. Equal to another
    :class:`NDArray` with the same dtype, shape and bytes."""

    __slots__ = ("data", "dtype", "shape")

    def __init__(
        self, dtype: str, shape: tuple[int, ...] | list[int], data: bytes | bytearray | memoryview
    ) -> None:
        itemsize = dtype_itemsize(dtype)
        dims = tuple(shape)
        if len(dims) > MAX_DIMS or any(type(d) is not int or d < 0 for d in dims):
            raise ValueError(f"shape must be at most {MAX_DIMS} non-negative ints, got {dims[:8]!r}")
        view = memoryview(data).cast("B")
        if view.nbytes != math.prod(dims) * itemsize:
            raise ValueError(
                f"an array of shape {dims} and dtype {dtype!r} holds {math.prod(dims) * itemsize} bytes, "
                f"got {view.nbytes}"
            )
        self.dtype = dtype
        self.shape = dims
        self.data = view.toreadonly()

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.data.nbytes

    def to_numpy(self) -> Any:
        """The NumPy array: ``numpy.frombuffer`` over :attr:`data` (no copy; read-only)."""
        import numpy  # only here: pyrt never needs NumPy otherwise

        return numpy.frombuffer(self.data, dtype=numpy.dtype(self.dtype)).reshape(self.shape)

    def tolist(self) -> Any:
        """Nested lists of Python numbers, as NumPy's ``tolist`` gives (bool, int, float and
        complex dtypes; :class:`TypeError` for the others: use :meth:`to_numpy`)."""
        order, kind, size = self.dtype[0], self.dtype[1], int(_DTYPE.fullmatch(self.dtype).group(3))  # type: ignore[union-attr]
        code = _STRUCT.get((kind, size))
        if code is None:
            raise TypeError(f"tolist() does not read dtype {self.dtype!r} without NumPy: use to_numpy()")
        prefix = ">" if order == ">" else "<" if order == "<" else "="
        values: Iterator[Any] = (v[0] for v in struct.iter_unpack(prefix + code, self.data))
        if kind == "c":
            flat = list(values)
            items: list[Any] = [complex(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]
        else:
            items = list(values)
        return _nest(items, self.shape)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NDArray):
            return NotImplemented
        return self.dtype == other.dtype and self.shape == other.shape and self.data == other.data

    def __hash__(self) -> int:
        return hash((self.dtype, self.shape, self.data.nbytes))

    def __repr__(self) -> str:
        return f"NDArray(dtype={self.dtype!r}, shape={self.shape!r}, nbytes={self.nbytes})"


def _nest(items: list[Any], shape: tuple[int, ...]) -> Any:
    if not shape:
        return items[0]
    if len(shape) == 1:
        return items
    step = math.prod(shape[1:])
    return [_nest(items[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]
