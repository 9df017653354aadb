//! A response body as a plan, sent a piece at a time: literal bytes (the
//! delimiters of a `multipart/byteranges` body) and spans of the object's
//! content, each read one chunk at a time, so that only the chunks a range
//! overlaps are read and no more than one is held.

use std::collections::VecDeque;

use crate::range::{ByteRange, Multipart, MultipartError};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(Vec<u8>),
    Content(ByteRange),
}

/// What to send next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Literal(Vec<u8>),
    /// Bytes `from..to` of chunk `index`.
    Chunk {
        index: u64,
        from: usize,
        to: usize,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pieces: VecDeque<Piece>,
    chunk_bytes: u64,
    length: u64,
}

impl Plan {
    /// Bytes `range.first..=range.last` of the content (a whole object is
    /// the range `0..=size-1`).
    pub fn content(range: ByteRange, chunk_bytes: u64) -> Plan {
        Plan {
            pieces: VecDeque::from([Piece::Content(range)]),
            chunk_bytes: chunk_bytes.max(1),
            length: range.length(),
        }
    }

    /// A `multipart/byteranges` body of `ranges`.
    pub fn multipart(
        multipart: &Multipart<'_>,
        ranges: &[ByteRange],
        chunk_bytes: u64,
    ) -> Result<Plan, MultipartError> {
        let length = multipart.length(ranges)?;
        let mut pieces = VecDeque::with_capacity(2 * ranges.len() + 1);
        for (index, range) in ranges.iter().enumerate() {
            pieces.push_back(Piece::Literal(
                multipart.part_header(index, *range).into_bytes(),
            ));
            pieces.push_back(Piece::Content(*range));
        }
        pieces.push_back(Piece::Literal(multipart.trailer().into_bytes()));
        Ok(Plan {
            pieces,
            chunk_bytes: chunk_bytes.max(1),
            length,
        })
    }

    /// The body's total length in bytes (its `Content-Length`).
    pub fn length(&self) -> u64 {
        self.length
    }

    /// The next piece to send; `None` once the body is complete.
    pub fn next_step(&mut self) -> Option<Step> {
        match self.pieces.pop_front()? {
            Piece::Literal(bytes) => Some(Step::Literal(bytes)),
            Piece::Content(range) => {
                let chunk = self.chunk_bytes;
                let index = range.first / chunk;
                let start = index * chunk;
                let end = range.last.saturating_add(1).min(start + chunk);
                if end <= range.last {
                    self.pieces.push_front(Piece::Content(ByteRange {
                        first: end,
                        last: range.last,
                    }));
                }
                Some(Step::Chunk {
                    index,
                    from: (range.first - start) as usize,
                    to: (end - start) as usize,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The body a plan produces over `content` stored in `chunk`-byte chunks.
    fn play(mut plan: Plan, content: &[u8], chunk: usize) -> (Vec<u8>, Vec<u64>) {
        let mut out = Vec::new();
        let mut reads = Vec::new();
        while let Some(step) = plan.next_step() {
            match step {
                Step::Literal(bytes) => out.extend(bytes),
                Step::Chunk { index, from, to } => {
                    reads.push(index);
                    let stored = content.chunks(chunk).nth(index as usize).unwrap();
                    out.extend_from_slice(&stored[from..to]);
                }
            }
        }
        (out, reads)
    }

    #[test]
    fn a_range_inside_chunks_reads_only_the_chunks_it_overlaps() {
        let content: Vec<u8> = (0..100u8).collect();
        let range = ByteRange {
            first: 25,
            last: 61,
        };
        let (body, reads) = play(Plan::content(range, 10), &content, 10);
        assert_eq!(body, &content[25..=61]);
        assert_eq!(reads, vec![2, 3, 4, 5, 6]);
    }

    #[test]
    fn a_multipart_plan_matches_the_whole_body() {
        let content: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let multipart = Multipart::new("b", "text/plain", 1000).unwrap();
        let ranges = [
            ByteRange { first: 5, last: 5 },
            ByteRange {
                first: 95,
                last: 305,
            },
            ByteRange {
                first: 990,
                last: 999,
            },
        ];
        let whole = multipart
            .body(&ranges, |r| {
                Some(content[r.first as usize..=r.last as usize].to_vec())
            })
            .unwrap();
        let plan = Plan::multipart(&multipart, &ranges, 64).unwrap();
        assert_eq!(plan.length(), whole.len() as u64);
        assert_eq!(play(plan, &content, 64).0, whole);
    }

    proptest! {
        #[test]
        fn any_range_is_sent_exactly(
            size in 1u64..5000,
            chunk in 1u64..700,
            a in 0u64..5000,
            b in 0u64..5000,
        ) {
            let content: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
            let (first, last) = ((a.min(b)) % size, (a.max(b)) % size);
            let (first, last) = (first.min(last), first.max(last));
            let range = ByteRange { first, last };
            let plan = Plan::content(range, chunk);
            prop_assert_eq!(plan.length(), last - first + 1);
            let (body, reads) = play(plan, &content, chunk as usize);
            prop_assert_eq!(&body[..], &content[first as usize..=last as usize]);
            let expected: Vec<u64> = (first / chunk..=last / chunk).collect();
            prop_assert_eq!(reads, expected);
        }
    }
}
