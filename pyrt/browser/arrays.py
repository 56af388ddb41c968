"""Arrays received on the binary binding, handed to JavaScript as typed arrays for plotting.

:func:`typed_array` turns a :class:`pyrt.NDArray` (or a NumPy array) of a numeric dtype into the
matching JavaScript typed array (``Float32Array`` for ``<f4``...) in **one bulk copy** out of the
Python heap (``to_js`` of a memoryview), never an element at a time. The result is flat, in C
order; its shape is the array's ``shape``. A big-endian array is byte-swapped on the Python side
first (JavaScript typed arrays are little-endian in WebAssembly). Other dtypes (datetimes, text,
complex) raise :class:`TypeError`: read them with ``tolist()``.
"""

from __future__ import annotations

import array as _array
from typing import Any

import js
from pyodide.ffi import to_js

from pyrt.wire.ndarray import NDArray

__all__ = ["typed_array"]

#: (kind, itemsize) -> the JavaScript typed array, and the ``array`` module code that swaps its bytes.
_TYPED: dict[tuple[str, int], tuple[str, str]] = {
    ("f", 4): ("Float32Array", "f"),
    ("f", 8): ("Float64Array", "d"),
    ("i", 1): ("Int8Array", "b"),
    ("i", 2): ("Int16Array", "h"),
    ("i", 4): ("Int32Array", "i"),
    ("i", 8): ("BigInt64Array", "q"),
    ("u", 1): ("Uint8Array", "B"),
    ("u", 2): ("Uint16Array", "H"),
    ("u", 4): ("Uint32Array", "I"),
    ("u", 8): ("BigUint64Array", "Q"),
    ("b", 1): ("Uint8Array", "B"),
}


def typed_array(array: Any) -> Any:
    """``array`` (an :class:`NDArray` or a NumPy array) as a flat JavaScript typed array."""
    if not isinstance(array, NDArray):
        array = NDArray(array.dtype.str, array.shape, array.tobytes())
    order, kind, size = array.dtype[0], array.dtype[1], array.nbytes // max(array.size, 1)
    found = _TYPED.get((kind, size if array.size else int(array.dtype[2:])))
    if found is None:
        raise TypeError(f"no JavaScript typed array holds dtype {array.dtype!r}: use tolist()")
    name, code = found
    data: Any = array.data
    if order == ">" and size > 1:
        swapped = _array.array(code)
        swapped.frombytes(data)
        swapped.byteswap()
        data = memoryview(swapped).cast("B")
    raw = to_js(data)  # a Uint8Array holding a copy of the bytes
    return getattr(js, name).new(raw.buffer, raw.byteOffset, array.size)
