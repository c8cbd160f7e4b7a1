//! Small matmuls written straight into our own buffers (gemm, the library behind Flex's
//! matmul, on the calling thread): the recurrent steps run one per step and block of rows,
//! where a Flex matmul would copy its inputs and allocate its output every time.

/// A read-only matrix view: element `(i, j)` is `values[i * row_stride + j * col_stride]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct View<'a> {
    pub values: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> View<'a> {
    /// `rows` rows of `cols` values, each row starting `row_stride` after the previous one.
    pub fn rows(values: &'a [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        Self {
            values,
            rows,
            cols,
            row_stride,
            col_stride: 1,
        }
    }

    /// The transpose of a row-major `[rows, cols]` matrix: `[cols, rows]`.
    pub fn transposed(values: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            values,
            rows: cols,
            cols: rows,
            row_stride: 1,
            col_stride: cols,
        }
    }

    /// This matrix transposed: the same values.
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// The index of the last element, which must lie inside `values`.
    fn last(&self) -> usize {
        (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
    }
}

/// `out = lhs @ rhs`, or `out += lhs @ rhs` when `accumulate`; `out` is row-major
/// `[lhs.rows, rhs.cols]`. Runs on the calling thread.
pub(crate) fn matmul_into(out: &mut [f32], lhs: View, rhs: View, accumulate: bool) {
    assert_eq!(out.len(), lhs.rows * rhs.cols, "matmul_into: output size");
    matmul_into_rows(out, rhs.cols, lhs, rhs, accumulate, Threads::One);
}

/// Whether a matmul runs on the calling thread or on all of rayon's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Threads {
    One,
    All,
}

/// `matmul_into` with the output's rows `out_row_stride` apart in `out` (a strided view of a
/// larger buffer), on one thread or all.
pub(crate) fn matmul_into_rows(
    out: &mut [f32],
    out_row_stride: usize,
    lhs: View,
    rhs: View,
    accumulate: bool,
    threads: Threads,
) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(k, rhs.rows, "matmul_into: inner sizes differ");
    if m == 0 || n == 0 {
        return;
    }
    assert!(out_row_stride >= n && out.len() >= (m - 1) * out_row_stride + n);
    if k == 0 {
        if !accumulate {
            for row in 0..m {
                out[row * out_row_stride..][..n].fill(0.0);
            }
        }
        return;
    }
    assert!(lhs.last() < lhs.values.len() && rhs.last() < rhs.values.len());
    let parallelism = match threads {
        Threads::One => gemm::Parallelism::None,
        Threads::All => gemm::Parallelism::Rayon(0),
    };
    // SAFETY: the asserts above keep every element gemm reads inside `lhs` and `rhs`, and every
    // element it writes inside `out` (m rows of n, `out_row_stride` apart); the three do not
    // overlap (`out` is a unique borrow).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            out_row_stride as isize,
            accumulate,
            lhs.values.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.values.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook triple loop.
    fn naive(lhs: View, rhs: View) -> Vec<f32> {
        let mut out = vec![0.0; lhs.rows * rhs.cols];
        for i in 0..lhs.rows {
            for j in 0..rhs.cols {
                for p in 0..lhs.cols {
                    out[i * rhs.cols + j] += lhs.values[i * lhs.row_stride + p * lhs.col_stride]
                        * rhs.values[p * rhs.row_stride + j * rhs.col_stride];
                }
            }
        }
        out
    }

    #[test]
    fn strided_and_transposed_views_multiply_as_the_triple_loop() {
        let values: Vec<f32> = (0..200).map(|v| (v as f32 * 0.37).sin()).collect();
        // 3 rows of 4 taken 9 apart, times the transpose of a row-major [5, 4].
        let lhs = View::rows(&values[7..], 3, 4, 9);
        let rhs = View::transposed(&values[100..120], 5, 4);
        let expected = naive(lhs, rhs);
        let mut out = vec![1.0; 15];
        matmul_into(&mut out, lhs, rhs, true);
        for (o, e) in out.iter().zip(&expected) {
            assert!((o - (e + 1.0)).abs() < 1e-5);
        }
        matmul_into(&mut out, lhs, rhs, false);
        for (o, e) in out.iter().zip(&expected) {
            assert!((o - e).abs() < 1e-5);
        }
    }
}
