//! W3C Trace Context on every record, so one id finds a request in both functions' logs and on
//! every topic it touched.
//!
//! The API puts a `traceparent` header on the request record: the caller's own when it sent a
//! valid one, otherwise one made from API Gateway's or Lambda's X-Ray trace id, otherwise a new
//! one; in each case with a parent id of the API's own. The generator continues the request's
//! trace on the response (and DLQ) record with a parent id of its own. A malformed header is
//! replaced, never propagated.
//!
//! - `traceparent`: <https://www.w3.org/TR/trace-context/#traceparent-header>
//! - X-Ray's header (`Root=1-{8 hex}-{24 hex};Parent={16 hex};Sampled=1`):
//!   <https://docs.aws.amazon.com/xray/latest/devguide/xray-concepts.html#xray-concepts-tracingheader>

use uuid::Uuid;

/// A `traceparent`: the trace, the span that sent it, and the sampled flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: u128,
    parent_id: u64,
    flags: u8,
}

impl TraceContext {
    /// A `traceparent` header, if it is valid: version `00` exactly as specified, or a later
    /// version read by its first four fields (the spec's rule). Upper-case hex, an all-zero
    /// trace or parent id and version `ff` are invalid.
    pub fn parse(header: &str) -> Option<Self> {
        let header = header.trim();
        let version = header.get(..2)?;
        if !is_lower_hex(version) || version == "ff" {
            return None;
        }
        let fields = header.get(..55)?;
        let rest = &header[55..];
        if version == "00" && !rest.is_empty()
            || version != "00" && !(rest.is_empty() || rest.starts_with('-'))
        {
            return None;
        }
        let mut parts = fields.split('-');
        let (_, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if trace.len() != 32 || parent.len() != 16 || flags.len() != 2 {
            return None;
        }
        if ![trace, parent, flags].iter().all(|part| is_lower_hex(part)) {
            return None;
        }
        let context = TraceContext {
            trace_id: u128::from_str_radix(trace, 16).ok()?,
            parent_id: u64::from_str_radix(parent, 16).ok()?,
            flags: u8::from_str_radix(flags, 16).ok()?,
        };
        (context.trace_id != 0 && context.parent_id != 0).then_some(context)
    }

    /// An X-Ray trace header (API Gateway's `X-Amzn-Trace-Id`, Lambda's `_X_AMZN_TRACE_ID`) as
    /// a trace context: the root's 32 hex digits are the trace id, `Parent` (or a new id when it
    /// is missing, malformed or zero) the parent, `Sampled=1` the sampled flag.
    pub fn from_xray(header: &str) -> Option<Self> {
        let mut root = None;
        let mut parent = None;
        let mut sampled = false;
        for field in header.split(';') {
            match field.trim().split_once('=') {
                Some(("Root", value)) => root = Some(value),
                Some(("Parent", value)) => parent = Some(value),
                Some(("Sampled", value)) => sampled = value == "1",
                _ => {}
            }
        }
        let root = root?.strip_prefix("1-")?;
        let (epoch, unique) = root.split_once('-')?;
        let digits = format!("{epoch}{unique}");
        // `is_hex` first: `from_str_radix` would take a leading `+`.
        if epoch.len() != 8 || unique.len() != 24 || !is_hex(&digits) {
            return None;
        }
        let trace_id = u128::from_str_radix(&digits, 16).ok()?;
        // A parent that is missing, malformed or zero is replaced; the trace is kept.
        let parent_id = parent
            .filter(|p| p.len() == 16 && is_hex(p))
            .and_then(|p| u64::from_str_radix(p, 16).ok())
            .filter(|&id| id != 0)
            .unwrap_or_else(random_span_id);
        (trace_id != 0).then_some(TraceContext {
            trace_id,
            parent_id,
            flags: u8::from(sampled),
        })
    }

    /// A new trace, sampled.
    pub fn new_root() -> Self {
        TraceContext {
            trace_id: Uuid::new_v4().as_u128(),
            parent_id: random_span_id(),
            flags: 1,
        }
    }

    /// The API's rule: the caller's valid `traceparent`, else the X-Ray trace headers in order,
    /// else a new trace; then a span of the API's own in it.
    pub fn for_request<'a>(traceparent: Option<&str>, xray: impl IntoIterator<Item = &'a str>) -> Self {
        traceparent
            .and_then(Self::parse)
            .or_else(|| xray.into_iter().find_map(Self::from_xray))
            .unwrap_or_else(Self::new_root)
            .child()
    }

    /// The same trace and flags with a new parent id: what a service that continues the trace
    /// sends on.
    pub fn child(&self) -> Self {
        TraceContext {
            parent_id: random_span_id(),
            ..*self
        }
    }

    /// The trace id, 32 lower-case hex digits: what logs and the timeline search by.
    pub fn trace_id(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// The `traceparent` header value (version `00`).
    pub fn to_header(&self) -> String {
        format!(
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.parent_id, self.flags
        )
    }
}

fn is_lower_hex(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn is_hex(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A random, non-zero span id.
fn random_span_id() -> u64 {
    loop {
        let id = Uuid::new_v4().as_u64_pair().0;
        if id != 0 {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_round_trips() {
        let context = TraceContext::parse(VALID).unwrap();
        assert_eq!(context.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(context.to_header(), VALID);
        // A later version is read by its first four fields.
        let future = TraceContext::parse(&format!("01{}-what-comes-next", &VALID[2..])).unwrap();
        assert_eq!(future.trace_id(), context.trace_id());
    }

    #[test]
    fn a_malformed_traceparent_is_refused() {
        for bad in [
            "",
            "00",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0é",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn an_xray_header_gives_its_root_as_the_trace_id() {
        let context = TraceContext::from_xray(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        )
        .unwrap();
        assert_eq!(
            context.to_header(),
            "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"
        );
        let unsampled = TraceContext::from_xray("Root=1-5759e988-bd862e3fe1be46a994272793").unwrap();
        assert_eq!(unsampled.trace_id(), "5759e988bd862e3fe1be46a994272793");
        assert!(unsampled.to_header().ends_with("-00"));
        for bad in [
            "",
            "Root=2-5759e988-bd862e3fe1be46a994272793",
            "Root=1-5759e988-bd86",
            "Self=1-x",
        ] {
            assert_eq!(TraceContext::from_xray(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_api_keeps_the_callers_trace_then_x_ray_then_starts_one() {
        let callers = TraceContext::for_request(Some(VALID), ["Root=1-5759e988-bd862e3fe1be46a994272793"]);
        assert_eq!(callers.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(callers.to_header(), VALID, "the API's own span");
        assert!(callers.to_header().ends_with("-01"));

        let from_xray = TraceContext::for_request(
            Some("garbage"),
            ["no root here", "Root=1-5759e988-bd862e3fe1be46a994272793"],
        );
        assert_eq!(from_xray.trace_id(), "5759e988bd862e3fe1be46a994272793");

        let new = TraceContext::for_request(None, []);
        let again = TraceContext::for_request(None, []);
        assert_ne!(new.trace_id(), again.trace_id());
        assert_eq!(TraceContext::parse(&new.to_header()), Some(new));
    }

    #[test]
    fn a_child_keeps_the_trace_and_flags_with_a_new_parent() {
        let parent = TraceContext::parse(VALID).unwrap();
        let child = parent.child();
        assert_eq!(child.trace_id(), parent.trace_id());
        assert_ne!(child.to_header(), parent.to_header());
        assert_eq!(&child.to_header()[53..], "01");
    }

    #[test]
    fn a_field_of_the_wrong_length_is_refused_even_when_the_header_is_55_characters() {
        // A 15-digit parent id and a trailing dash: 55 characters, four fields, one too short.
        assert_eq!(
            TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01-"),
            None
        );
        assert_eq!(
            TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01-"),
            None
        );
    }

    #[test]
    fn an_xray_root_must_be_hex_and_non_zero_and_a_bad_parent_is_replaced() {
        for bad in [
            "Root=1-5759e98z-bd862e3fe1be46a994272793",
            "Root=1-5759e988-bd862e3fe1be46a99427279z",
            "Root=1-00000000-000000000000000000000000",
            "Root=1-+759e988-bd862e3fe1be46a994272793",
        ] {
            assert_eq!(TraceContext::from_xray(bad), None, "{bad}");
        }
        // Each bad parent, and the parent id it must not become.
        for (parent, not) in [
            ("xyz", "xyz"),
            ("abc", "0000000000000abc"),
            ("53995c3f42cd8adz", "53995c3f42cd8adz"),
            ("+3995c3f42cd8ad8", "03995c3f42cd8ad8"),
            ("0000000000000000", "0000000000000000"),
        ] {
            let header = format!("Root=1-5759e988-bd862e3fe1be46a994272793;Parent={parent};Sampled=1");
            let context = TraceContext::from_xray(&header).unwrap_or_else(|| panic!("{header}"));
            let ours = context.to_header();
            assert!(!ours.contains(not), "{parent}: {ours}");
            assert_eq!(TraceContext::parse(&ours), Some(context));
        }
    }

    #[test]
    fn every_child_gets_a_span_id_of_its_own() {
        let parent = TraceContext::parse(VALID).unwrap();
        let ids: std::collections::HashSet<String> = (0..50).map(|_| parent.child().to_header()).collect();
        assert_eq!(ids.len(), 50);
    }
}
