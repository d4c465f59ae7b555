//! ROUTE-REFRESH message (RFC 2918 §3) with the Enhanced Route Refresh subtypes (RFC 7313 §3).
//!
//! ```text
//!  0       7      15      23      31
//! +-------+-------+-------+-------+
//! |      AFI      | Subtype | SAFI |   Subtype: 0 request, 1 BoRR, 2 EoRR (RFC 7313)
//! +-------+-------+-------+-------+
//! ```

use super::error::{DecodeError, code, route_refresh_sub};
use super::family::{Afi, Family, Safi};
use bytes::{BufMut, Bytes, BytesMut};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefreshSubtype {
    Request,
    BeginOfRouteRefresh,
    EndOfRouteRefresh,
    Unknown(u8),
}

impl RefreshSubtype {
    fn from_u8(v: u8) -> RefreshSubtype {
        match v {
            0 => RefreshSubtype::Request,
            1 => RefreshSubtype::BeginOfRouteRefresh,
            2 => RefreshSubtype::EndOfRouteRefresh,
            n => RefreshSubtype::Unknown(n),
        }
    }
    fn to_u8(self) -> u8 {
        match self {
            RefreshSubtype::Request => 0,
            RefreshSubtype::BeginOfRouteRefresh => 1,
            RefreshSubtype::EndOfRouteRefresh => 2,
            RefreshSubtype::Unknown(n) => n,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteRefresh {
    pub family: Family,
    pub subtype: RefreshSubtype,
}

impl RouteRefresh {
    pub fn request(family: Family) -> RouteRefresh {
        RouteRefresh { family, subtype: RefreshSubtype::Request }
    }

    /// `whole` is the complete message: RFC 7313 §5 puts it in the data of the 7/1 error.
    pub fn decode(body: &[u8], whole: &[u8]) -> Result<RouteRefresh, DecodeError> {
        if body.len() != 4 {
            return Err(DecodeError::new(
                code::ROUTE_REFRESH,
                route_refresh_sub::INVALID_MESSAGE_LENGTH,
                Bytes::copy_from_slice(whole),
                format!("ROUTE-REFRESH of {} octets, want 23", whole.len()),
            ));
        }
        Ok(RouteRefresh {
            family: Family::new(Afi::from_u16(u16::from_be_bytes([body[0], body[1]])), Safi::from_u8(body[3])),
            subtype: RefreshSubtype::from_u8(body[2]),
        })
    }

    pub fn encode_body(&self, out: &mut BytesMut) {
        out.put_u16(self.family.afi.to_u16());
        out.put_u8(self.subtype.to_u8());
        out.put_u8(self.family.safi.to_u8());
    }
}
