//! Transposition of strided matrices of 4-byte values: max pooling moves planes into vector
//! lanes and back with it, and the recurrent layers transpose their weights once per call.

/// A 4-byte value that `transpose` moves as it is (f32 values, u32 indices).
pub(crate) trait Word: Copy {}
impl Word for f32 {}
impl Word for u32 {}

/// `to[j * to_stride + i] = from[i * from_stride + j]` for `rows` x `cols` values. Whole
/// 16 x 16 tiles go through AVX-512 shuffles where the CPU has them; the rest, and other CPUs,
/// run the scalar loop.
pub(crate) fn transpose<T: Word>(
    from: &[T],
    from_stride: usize,
    rows: usize,
    cols: usize,
    to: &mut [T],
    to_stride: usize,
) {
    assert!(
        from_stride >= cols && to_stride >= rows,
        "transpose: rows overlap"
    );
    let (mut tiled_rows, mut tiled_cols) = (0, 0);
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") && rows >= 16 && cols >= 16 {
        (tiled_rows, tiled_cols) = (rows / 16 * 16, cols / 16 * 16);
        assert!(from.len() >= (tiled_rows - 1) * from_stride + tiled_cols);
        assert!(to.len() >= (tiled_cols - 1) * to_stride + tiled_rows);
        for i in (0..tiled_rows).step_by(16) {
            for j in (0..tiled_cols).step_by(16) {
                // SAFETY: the CPU has AVX-512; the asserts keep the tile's 16 rows of 16
                // values inside `from`, and its 16 columns of 16 inside `to`.
                unsafe {
                    let from = from.as_ptr().add(i * from_stride + j).cast::<f32>();
                    let to = to.as_mut_ptr().add(j * to_stride + i).cast::<f32>();
                    transpose_tile(from, from_stride, to, to_stride);
                }
            }
        }
    }
    for i in 0..rows {
        let done = if i < tiled_rows { tiled_cols } else { 0 };
        for j in done..cols {
            to[j * to_stride + i] = from[i * from_stride + j];
        }
    }
}

/// One 16 x 16 tile of 4-byte values transposed in registers: pairs of rows interleaved by 32
/// then 64 bits, then 128-bit quarters swapped between rows twice.
///
/// # Safety
/// The CPU must have AVX-512F; `from` must hold 16 rows of 16 values `from_stride` apart, and
/// `to` room for 16 rows of 16 values `to_stride` apart.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transpose_tile(from: *const f32, from_stride: usize, to: *mut f32, to_stride: usize) {
    use std::arch::x86_64::*;
    let pd = _mm512_castps_pd;
    let ps = _mm512_castpd_ps;
    // SAFETY: the caller keeps the 16 rows inside both buffers.
    let mut r: [__m512; 16] =
        std::array::from_fn(|i| unsafe { _mm512_loadu_ps(from.add(i * from_stride)) });
    let mut t = r;
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for q in (0..16).step_by(4) {
        r[q] = ps(_mm512_unpacklo_pd(pd(t[q]), pd(t[q + 2])));
        r[q + 1] = ps(_mm512_unpackhi_pd(pd(t[q]), pd(t[q + 2])));
        r[q + 2] = ps(_mm512_unpacklo_pd(pd(t[q + 1]), pd(t[q + 3])));
        r[q + 3] = ps(_mm512_unpackhi_pd(pd(t[q + 1]), pd(t[q + 3])));
    }
    for h in [0, 8] {
        for j in h..h + 4 {
            t[j] = _mm512_shuffle_f32x4::<0x88>(r[j], r[j + 4]);
            t[j + 4] = _mm512_shuffle_f32x4::<0xdd>(r[j], r[j + 4]);
        }
    }
    for j in 0..8 {
        r[j] = _mm512_shuffle_f32x4::<0x88>(t[j], t[j + 8]);
        r[j + 8] = _mm512_shuffle_f32x4::<0xdd>(t[j], t[j + 8]);
    }
    for (i, row) in r.into_iter().enumerate() {
        // SAFETY: as above.
        unsafe { _mm512_storeu_ps(to.add(i * to_stride), row) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whole tiles, partial ones and strides wider than the rows: the same as the naive loop,
    /// for f32 values and u32 indices.
    #[test]
    fn transpose_moves_every_value_to_its_place() {
        for (rows, cols, from_pad, to_pad) in [
            (16, 16, 0, 0),
            (16, 37, 3, 0),
            (40, 16, 0, 5),
            (33, 50, 1, 2),
            (5, 7, 0, 0),
        ] {
            let (from_stride, to_stride) = (cols + from_pad, rows + to_pad);
            let from: Vec<u32> = (0..rows * from_stride).map(|v| v as u32 * 7 + 1).collect();
            let mut to = vec![0u32; cols * to_stride];
            transpose(&from, from_stride, rows, cols, &mut to, to_stride);
            let floats: Vec<f32> = from.iter().map(|&v| v as f32 - 0.5).collect();
            let mut to_floats = vec![0.0f32; cols * to_stride];
            transpose(&floats, from_stride, rows, cols, &mut to_floats, to_stride);
            for i in 0..rows {
                for j in 0..cols {
                    assert_eq!(
                        to[j * to_stride + i],
                        from[i * from_stride + j],
                        "{rows}x{cols} at {i},{j}"
                    );
                    assert_eq!(to_floats[j * to_stride + i], floats[i * from_stride + j]);
                }
            }
        }
    }
}
