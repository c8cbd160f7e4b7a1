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

    /// The index of the last element, which must lie inside `values`.
    fn last(&self) -> usize {
        (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
    }
}

/// `out = lhs @ rhs`, or `out += lhs @ rhs` when `accumulate`; `out` is row-major
/// `[lhs.rows, rhs.cols]`. Runs on the calling thread.
pub(crate) fn matmul_into(out: &mut [f32], lhs: View, rhs: View, accumulate: bool) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(k, rhs.rows, "matmul_into: inner sizes differ");
    assert_eq!(out.len(), m * n, "matmul_into: output size");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            out.fill(0.0);
        }
        return;
    }
    assert!(lhs.last() < lhs.values.len() && rhs.last() < rhs.values.len());
    // SAFETY: the asserts above keep every element gemm reads inside `lhs` and `rhs`, and every
    // element it writes inside `out` (row-major, m x n); the three do not overlap (`out` is a
    // unique borrow).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
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
            gemm::Parallelism::None,
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
