"""Exact and near-duplicate images, found by hashing: a content hash of the pixels and a perceptual hash.

A retrieval score is only trustworthy when a query's nearest neighbour is not the query itself under another
name. Two hashes per image find such pairs without any model:

- :func:`content_hash`: SHA-256 of the decoded pixels (with mode and size), so two files that decode to the
  same pixels match whatever their encoding (PNG options, metadata, format).
- :func:`perceptual_hash`: the 64-bit DCT hash of ``imagehash.phash`` (``hash_size=8``), as 16 hex digits. Two
  images are *near-duplicates* when their hashes differ in at most :data:`PHASH_MAX_DISTANCE` bits: the same
  picture resized, recompressed, or retouched a little.
- :func:`hash_pairs`: every exact pair (equal content hash) and every near pair (Hamming distance of the
  perceptual hashes within the threshold, not exact), as a table of row indices.

Hash the image the pipeline sees: :func:`precompute.datasets.decode_image` returns transparent drawings
composited on white, and that RGB image is what both hashes take (a transparent image is refused by
:func:`perceptual_hash`, whose grey conversion would otherwise read the colour hidden under transparent pixels).

The threshold, measured
-----------------------
``PHASH_MAX_DISTANCE = 4``. Among drawings, every pair measured up to 6 bits apart was one drawing (copied,
recoloured, or edited a little) and distinct drawings start at 8. But where a 64-bit hash of grey levels cannot
tell different pictures apart (symbols; small images in one pose), 6 bits flag many more of them than 4 (on
Fashion-MNIST 4.3 times as many pairs, for one more copy of 32), and at 6 the books topic of
``data/openclipart-200`` no longer has 20 drawings. 4 keeps a margin below the first distinct drawings, finds
the copies and the recoloured drawings, and lets a variant 6 bits apart through.
Pairs at each distance were counted with :func:`hash_pairs` and random ones (all of them where few) looked at
side by side:

- **Open Clip Art** (Debian's ``openclipart-png``: 8,121 PNG files, of which 7,945 decode with something drawn;
  each cropped and downscaled as ``tools.openclipart`` does, composited on white). 1,512 exact pairs
  (2,107 files; 1,231 pairs across two topic folders). Near pairs (not exact) at distance 0, 2, 4, 6, 8, 10, 12:

  ======================================================  ====  ====  ====  ====  ====  ====  ====
  drawings                                                   0     2     4     6     8    10    12
  ======================================================  ====  ====  ====  ====  ====  ====  ====
  the 10 topics of ``data/openclipart-200``, as sampled      3     4     4     3     2     9     6
  (no ``*_bw*`` files; 438 drawings, 30 exact pairs)
  pictures: the library without its topics of symbols,      24    53    58    60    71   105   205
  icons, flags, cards, signs, shapes, maps (2,634)
  ======================================================  ====  ====  ====  ====  ====  ====  ====

  Up to 6 bits, every pair looked at was one drawing twice: recoloured (blue and red fedora at 0; lemon and
  lime slices, balloons at 0 to 4; two joysticks at 6), a detail changed (a smiley's mouth at 4; a book with a
  question mark added, a shaded apple, at 6), in outline and in colour (a flamingo, at 6). At 8 come the first
  distinct drawings (two lemons by two artists, beside a seagull in silhouette and in white), and at 10 more
  (road signs sharing a red triangle, a whale and a dolphin), among more variants of one drawing (a pie in
  outline and in colour, still at 12). So variants 6 bits apart pass as distinct: ``data/openclipart-200``
  keeps one such pair (``books-aj`` and ``help-books-aj``, the same books with a question mark added), the
  topic holding no other drawing to replace it with (of its 21 drawings, one is a copy of another).

  Symbols are where a 64-bit hash of grey levels fails: two flags of three horizontal bands (Germany and
  Poland), two playing cards of one layout, or the library's 1,378 spirograph "stars" (7,007 pairs at distance
  0, more at every distance) are within 0 to 4 bits. Such images are near pairs here whatever the threshold.
- **Fashion-MNIST** (``dataset-fashion-mnist``: 70,000 grey 28 x 28 images). No exact pair. 898, 20,198,
  156,238 and 674,737 pairs at distance 0, 2, 4 and 6. Nearly all are two *different* products of the same
  silhouette (a sneaker and another sneaker, mean absolute pixel difference 15 of 255 at distance 0): at 28 px,
  in one pose on black, the low frequencies a perceptual hash keeps are the silhouette. The copies of one photo
  (pairs within 12 bits whose mean absolute pixel difference is under 2 of 255) are at 0 (17 pairs), 2 (8),
  4 (5), 6 (1) and 8 (1): 30 of 32 within 4 bits. On such images a near pair mostly means "same
  silhouette": ``tools.fashion_mnist``'s sampler, dropping them, passes over a few distinct products (none
  in ``data/fashion-mnist-200``, whose closest pairs are 6 bits apart: 5 pairs, all distinct products).

Distances are nearly always even: ``imagehash.phash`` sets a bit for each of its 64 DCT coefficients above
their median, so most hashes have 32 bits set, and two such hashes differ in an even number of bits.

Speed
-----
:func:`hash_pairs` compares every pair by brute force (XOR, popcount, compare), in row blocks of at most
``_BLOCK_ELEMENTS`` distances at a time so memory stays bounded (10 MB of buffers whatever ``n``). For the
70,000 perceptual hashes of Fashion-MNIST (2.45 billion pairs) it took 6 s on the 2-core development machine
(one core used, beside other work; numpy 2.4, ``np.bitwise_count``); hashing the
70,000 images took 7 s.

Examples
--------
>>> from PIL import Image
>>> white, black = Image.new("RGB", (32, 32), "white"), Image.new("RGB", (32, 32), "black")
>>> content_hash(white) == content_hash(white.copy()), content_hash(white) == content_hash(black)
(True, False)
>>> len(perceptual_hash(white))
16
>>> hash_pairs(["x", "y", "x"], ["ffff0000ffff0000", "ffff0000ffff0001", "ffff0000ffff0000"],
...            labels=["cat", "cat", "dog"], max_distance=2)
   a  b   kind  phash_distance  cross_class
0  0  1   near               1        False
1  0  2  exact               0         True
2  1  2   near               1         True
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
from PIL import Image

PHASH_MAX_DISTANCE = 4
PHASH_BITS = 64
PAIR_COLUMNS = ("a", "b", "kind", "phash_distance", "cross_class")
# Distances computed at once in hash_pairs: a block of rows against every later hash. 1M uint64 XORs plus
# their uint8 popcounts and the boolean mask is 10 MB, whatever the number of images; larger blocks were slower
# on the development machine (less of them stays in cache), smaller ones no faster.
_BLOCK_ELEMENTS = 1 << 20
# Modes whose pixels carry transparency: the perceptual hash of such an image depends on what is under it.
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def content_hash(image: Image.Image) -> str:
    """SHA-256 of an image's decoded pixels, mode and size, as 64 hex digits.

    Parameters
    ----------
    image : PIL.Image.Image
        A decoded image. Hash what the pipeline sees (:func:`precompute.datasets.decode_image`'s RGB image) to
        compare images of any format.

    Returns
    -------
    str
        Equal for two images with the same mode, size and pixel values (and palette, for palette images),
        whatever file they came from; different otherwise.

    Examples
    --------
    >>> import io
    >>> from PIL import Image
    >>> image = Image.new("RGB", (8, 8), (200, 30, 30))
    >>> a, b = io.BytesIO(), io.BytesIO()
    >>> image.save(a, "PNG"); image.save(b, "PNG", optimize=True, compress_level=1)
    >>> content_hash(Image.open(a)) == content_hash(Image.open(b))
    True
    """
    _check_image(image)
    digest = hashlib.sha256(f"{image.mode} {image.width}x{image.height}\n".encode())
    if image.mode in ("P", "PA"):
        # Palette images store indices: the same indices under another palette are other colours.
        digest.update(bytes(image.getpalette() or []))
    digest.update(image.tobytes())
    return digest.hexdigest()


def perceptual_hash(image: Image.Image) -> str:
    """The 64-bit perceptual hash of an image (``imagehash.phash``, ``hash_size=8``) as 16 hex digits.

    Parameters
    ----------
    image : PIL.Image.Image
        A decoded image without transparency, as :func:`precompute.datasets.decode_image` returns it
        (transparent drawings composited on white).

    Returns
    -------
    str
        16 lowercase hex digits. Count the differing bits of two hashes (as :func:`hash_pairs` does) to compare
        images: 0 for the same picture, at most :data:`PHASH_MAX_DISTANCE` for near-duplicates.

    Raises
    ------
    ValueError
        For an image with an alpha channel (decode it with ``decode_image`` first) or no pixels.

    Examples
    --------
    >>> from PIL import Image
    >>> perceptual_hash(Image.new("L", (28, 28), 0))
    '0000000000000000'
    """
    import imagehash

    _check_image(image)
    if image.mode in _ALPHA_MODES or (image.mode in ("P", "L", "RGB") and "transparency" in image.info):
        raise ValueError(f"perceptual_hash got an image of mode {image.mode!r} with transparency; pass the RGB image "
                         "of precompute.datasets.decode_image (transparency on white) instead.")
    return str(imagehash.phash(image, hash_size=8))


def hash_pairs(content_hashes: Sequence[str], perceptual_hashes: Sequence[str], labels: Sequence | None = None,
               max_distance: int = PHASH_MAX_DISTANCE) -> pd.DataFrame:
    """Every pair of exact duplicates and of near-duplicates among ``n`` hashed images.

    Parameters
    ----------
    content_hashes : sequence of str, length n
        :func:`content_hash` of each image. Equal strings mean identical pixels.
    perceptual_hashes : sequence of str, length n
        :func:`perceptual_hash` of each image: 16 hex digits.
    labels : sequence, length n, optional
        Class of each image (any hashable values; None for an unlabeled image), to mark pairs across classes.
    max_distance : int, default PHASH_MAX_DISTANCE
        Largest Hamming distance (0..64) between two perceptual hashes for a *near* pair.

    Returns
    -------
    pandas.DataFrame
        One row per pair, sorted by ``a`` then ``b``, with columns

        - ``a``, ``b`` (int64): the two row indices, ``a < b``;
        - ``kind`` (str): ``"exact"`` when the content hashes are equal (every pair within a group of equal
          hashes, whatever their perceptual distance), else ``"near"``;
        - ``phash_distance`` (int64): bits that differ between the two perceptual hashes;
        - ``cross_class`` (bool): the labels differ (False everywhere when ``labels`` is None).

        No rows, with the same columns and dtypes, when there is no pair.

    Notes
    -----
    Brute force over the ``n (n - 1) / 2`` pairs, vectorised in row blocks: exact, and 10 MB of buffers
    whatever ``n``. 70,000 images took 6 s on a 2-core machine (see the module docstring).

    Examples
    --------
    >>> pairs = hash_pairs(["c0", "c1", "c0"], ["0000000000000000", "00000000000000ff", "0000000000000000"])
    >>> pairs[["a", "b", "kind"]].values.tolist()
    [[0, 2, 'exact']]
    >>> len(hash_pairs(["c0", "c1"], ["0000000000000000", "00000000000000ff"], max_distance=8))
    1
    """
    content = _check_hashes(content_hashes, "content_hashes")
    n = len(content)
    bits = _parse_phashes(_check_hashes(perceptual_hashes, "perceptual_hashes"), n)
    if labels is not None:
        labels = list(labels)
        if len(labels) != n:
            raise ValueError(f"labels has {len(labels)} entries for {n} content hashes; give one label per image.")
    if isinstance(max_distance, bool) or not isinstance(max_distance, (int, np.integer)) \
            or not 0 <= max_distance <= PHASH_BITS:
        raise ValueError(f"max_distance={max_distance!r} is not a whole number of bits in 0..{PHASH_BITS}.")

    content_codes = pd.factorize(pd.Series(content, dtype=object))[0]
    exact_a, exact_b = _exact_pairs(content_codes)
    near_a, near_b, near_distance = _near_pairs(bits, int(max_distance))
    not_exact = content_codes[near_a] != content_codes[near_b]
    a = np.concatenate([exact_a, near_a[not_exact]])
    b = np.concatenate([exact_b, near_b[not_exact]])
    distance = np.concatenate([_popcount(bits[exact_a] ^ bits[exact_b]), near_distance[not_exact]])
    kind = np.array(["exact"] * len(exact_a) + ["near"] * int(not_exact.sum()), dtype=object)
    if labels is None:
        cross = np.zeros(len(a), dtype=bool)
    else:
        label_codes = pd.factorize(pd.Series(labels, dtype=object), use_na_sentinel=False)[0]
        cross = label_codes[a] != label_codes[b]
    order = np.lexsort((b, a))
    # astype(str): pandas' string dtype (``str`` in pandas 3, object in pandas 2), the same with or without rows.
    return pd.DataFrame({"a": a[order].astype(np.int64), "b": b[order].astype(np.int64),
                         "kind": pd.Series(kind[order], dtype=object).astype(str),
                         "phash_distance": distance[order].astype(np.int64), "cross_class": cross[order]},
                        columns=list(PAIR_COLUMNS))


# ----------------------------------------------------------------------------------------------- checks


def _check_image(image: object) -> None:
    if not isinstance(image, Image.Image):
        raise ValueError(f"Expected a PIL.Image.Image, got {type(image).__name__}: {image!r:.80}.")
    if image.width == 0 or image.height == 0:
        raise ValueError(f"The image is empty ({image.width}x{image.height} pixels); there is nothing to hash.")


def _check_hashes(hashes: Sequence[str], name: str) -> list[str]:
    if isinstance(hashes, (str, bytes)):
        raise ValueError(f"{name} must be a sequence of hash strings, one per image, not the single string "
                         f"{hashes!r:.80}.")
    values = list(hashes)
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise ValueError(f"{name}[{i}] is {value!r:.80} ({type(value).__name__}); expected a hex string.")
    return values


def _parse_phashes(hashes: list[str], n: int) -> np.ndarray:
    """16-hex-digit strings -> uint64 array, checked."""
    if len(hashes) != n:
        raise ValueError(f"perceptual_hashes has {len(hashes)} entries for {n} content hashes; give both hashes "
                         "of every image.")
    for i, value in enumerate(hashes):
        if len(value) != PHASH_BITS // 4 or not set(value) <= _HEX_DIGITS:
            raise ValueError(f"perceptual_hashes[{i}] is {value!r:.80}; expected 16 hex digits (perceptual_hash's "
                             "output, a 64-bit imagehash.phash).")
    return np.array([int(value, 16) for value in hashes], dtype=np.uint64)


# ------------------------------------------------------------------------------------------------ maths


def _exact_pairs(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every ``(a, b)``, ``a < b``, with ``codes[a] == codes[b]``."""
    order = np.argsort(codes, kind="stable")  # each group's rows together, ascending
    starts = np.flatnonzero(np.r_[True, np.diff(codes[order]) != 0]) if len(codes) else np.zeros(0, np.int64)
    sizes = np.diff(np.r_[starts, len(codes)])
    pairs_a, pairs_b = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    for start, size in zip(starts[sizes > 1], sizes[sizes > 1], strict=True):
        members = order[start:start + size]
        i, j = np.triu_indices(size, k=1)
        pairs_a.append(members[i])
        pairs_b.append(members[j])
    return np.concatenate(pairs_a).astype(np.int64), np.concatenate(pairs_b).astype(np.int64)


def _near_pairs(bits: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every ``(a, b, distance)``, ``a < b``, with at most ``max_distance`` differing bits, in row blocks."""
    n = len(bits)
    found = [(np.zeros(0, dtype=np.int64),) * 3]
    # One set of buffers reused by every block: allocating them anew for each block costs a third of the time.
    # At least one row of hashes; no more than all the pairs for a small n.
    budget = max(min(_BLOCK_ELEMENTS, n * n), n)
    xor, counts, close = np.empty(budget, np.uint64), np.empty(budget, np.uint8), np.empty(budget, bool)
    start = 0
    while start < n - 1:
        # Rows start..stop-1 against every hash after row ``start``: the upper triangle plus a small corner.
        width = n - 1 - start
        stop = min(n - 1, start + max(1, budget // width))
        shape = (stop - start, width)
        size = shape[0] * shape[1]
        block_xor, block_counts = xor[:size].reshape(shape), counts[:size].reshape(shape)
        np.bitwise_xor(bits[start:stop, None], bits[None, start + 1:], out=block_xor)
        _popcount(block_xor, out=block_counts)
        rows, cols = np.nonzero(np.less_equal(block_counts, max_distance, out=close[:size].reshape(shape)))
        upper = cols >= rows  # column c is hash start + 1 + c, row r is hash start + r
        rows, cols = rows[upper], cols[upper]
        found.append((rows + start, cols + start + 1, block_counts[rows, cols]))
        start = stop
    return tuple(np.concatenate([f[k] for f in found]).astype(np.int64) for k in range(3))


if hasattr(np, "bitwise_count"):  # numpy >= 2

    def _popcount(values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Set bits of each uint64, as uint8."""
        return np.bitwise_count(values, out=out)

else:
    _BYTE_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)

    def _popcount(values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Set bits of each uint64, as uint8: a lookup table over its 8 bytes."""
        as_bytes = np.ascontiguousarray(values, dtype=np.uint64).view(np.uint8).reshape(*values.shape, 8)
        return _BYTE_POPCOUNT[as_bytes].sum(axis=-1, dtype=np.uint8, out=out)


class KeptHashes:
    """The hashes of the images kept so far, asked one candidate at a time: "does it duplicate any of them?".

    The incremental form of :func:`hash_pairs` for samplers that keep an image only when it duplicates none kept
    before it (``tools.fashion_mnist``, ``tools.openclipart``): the same rule (equal content hash, or perceptual
    hashes at most ``max_distance`` bits apart), but each question costs one XOR and popcount per kept hash,
    vectorised over a growing ``uint64`` array, and a set look-up, instead of a table of every pair. A 10,000-image
    sample asks about 5e7 XORs in all (well under a second) where rebuilding the pairs table for each candidate
    took minutes.

    >>> kept = KeptHashes()
    >>> kept.add("c0", "ffff0000ffff0000")
    >>> kept.duplicates("c1", "ffff0000ffff0001"), kept.duplicates("c1", "0000ffff0000ffff"), len(kept)
    (True, False, 1)
    """

    def __init__(self, max_distance: int = PHASH_MAX_DISTANCE) -> None:
        self.max_distance = int(max_distance)
        self._content: set[str] = set()
        self._bits = np.empty(1024, dtype=np.uint64)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def duplicates(self, content: str, perceptual: str) -> bool:
        """Whether an image with these hashes duplicates one kept (its pixels, or its perceptual hash)."""
        if content in self._content:
            return True
        bits = _parse_phashes([perceptual], 1)[0]
        distances = _popcount(self._bits[: self._n] ^ bits)
        return bool((distances <= self.max_distance).any())

    def add(self, content: str, perceptual: str) -> None:
        """Keep an image's hashes (whether or not it duplicates another: the caller decides)."""
        bits = _parse_phashes([perceptual], 1)[0]
        if self._n == len(self._bits):
            self._bits = np.concatenate([self._bits, np.empty_like(self._bits)])
        self._bits[self._n] = bits
        self._n += 1
        self._content.add(content)
