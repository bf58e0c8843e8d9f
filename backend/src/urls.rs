//! URLs people type (node endpoints, webhook and base URLs, `ctl --url`): why one does not
//! parse, in words that say what to change rather than the parser's own terms ("relative
//! URL without a base").

/// What is wrong with a URL that did not parse.
pub fn problem(e: url::ParseError) -> &'static str {
    use url::ParseError as E;
    match e {
        E::RelativeUrlWithoutBase | E::RelativeUrlWithCannotBeABaseBase | E::SetHostOnCannotBeABaseUrl => {
            "it needs a scheme: start it with http:// or https://"
        }
        E::EmptyHost => "it names no host",
        E::InvalidPort => "its port must be a number from 1 to 65535",
        E::InvalidIpv4Address | E::InvalidIpv6Address => "its IP address is not valid",
        E::InvalidDomainCharacter | E::IdnaError => "its host name has characters a host name cannot have",
        _ => "it is not a URL",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_say_what_to_change() {
        let problem_of = |raw: &str| problem(url::Url::parse(raw).unwrap_err());
        assert_eq!(problem_of("/api"), "it needs a scheme: start it with http:// or https://");
        assert_eq!(problem_of("10.0.0.5"), "it needs a scheme: start it with http:// or https://");
        assert_eq!(problem_of("http://host:99999"), "its port must be a number from 1 to 65535");
        assert_eq!(problem_of("http://"), "it names no host");
        assert_eq!(problem_of("http://[::1"), "its IP address is not valid");
    }
}
