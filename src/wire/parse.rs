//! nom glue for the codec. Parsers here fail with nom's unit error (the input was too short);
//! the caller turns that into the precise [`DecodeError`] for the field it was reading, with
//! [`OrBgp::or_bgp`]. nom stays inside `wire/`.

use super::error::DecodeError;
use nom::IResult;
use nom::bytes::complete::take;
use nom::number::complete::{be_u8, be_u16, be_u32};
use std::net::Ipv4Addr;

pub(crate) type NomResult<'a, T> = IResult<&'a [u8], T, ()>;

pub(crate) fn u8_(i: &[u8]) -> NomResult<'_, u8> {
    be_u8(i)
}

pub(crate) fn u16_(i: &[u8]) -> NomResult<'_, u16> {
    be_u16(i)
}

pub(crate) fn bytes(i: &[u8], n: usize) -> NomResult<'_, &[u8]> {
    take(n)(i)
}

pub(crate) fn ipv4(i: &[u8]) -> NomResult<'_, Ipv4Addr> {
    let (i, v) = be_u32(i)?;
    Ok((i, Ipv4Addr::from(v)))
}

/// Maps a short-input failure to the BGP error for the field being read.
pub(crate) trait OrBgp<'a, T> {
    fn or_bgp(self, err: impl FnOnce() -> DecodeError) -> Result<(&'a [u8], T), DecodeError>;
}

impl<'a, T> OrBgp<'a, T> for NomResult<'a, T> {
    fn or_bgp(self, err: impl FnOnce() -> DecodeError) -> Result<(&'a [u8], T), DecodeError> {
        self.map_err(|_| err())
    }
}
