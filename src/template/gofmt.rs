//! Go's number formatting (`%v`, `%g`, `%.2f`, `printf`) and Prometheus'
//! `humanize*` functions, so annotations read exactly as Prometheus renders
//! them. No crate formats floats the Go way (`%v` of 1e6 is `1e+06`, `%.4g`
//! drops trailing zeros), hence this file.

/// Decimal digits of `v` (no sign), trailing zeros removed, and the decimal
/// point position (`dp`): value = 0.d1d2… × 10^dp.
fn digits(v: f64, precision: Option<usize>) -> (Vec<u8>, i32) {
    let s = match precision {
        Some(p) => format!("{:.*e}", p.saturating_sub(1), v.abs()),
        None => format!("{:e}", v.abs()),
    };
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut d: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    while d.len() > 1 && d.last() == Some(&b'0') {
        d.pop();
    }
    if d == [b'0'] {
        return (d, 1);
    }
    (d, exp + 1)
}

fn special(v: f64) -> Option<String> {
    if v.is_nan() {
        Some("NaN".into())
    } else if v.is_infinite() {
        Some(if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        })
    } else {
        None
    }
}

fn fmt_e(neg: bool, d: &[u8], decimals: usize) -> String {
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    out.push(d[0] as char);
    if decimals > 0 {
        out.push('.');
        for i in 1..=decimals {
            out.push(*d.get(i).unwrap_or(&b'0') as char);
        }
    }
    out
}

/// Go's `%g` (`precision` None = shortest, as `%v` prints floats).
pub fn format_g(v: f64, precision: Option<usize>) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    let precision = precision.map(|p| p.max(1));
    let (d, dp) = digits(v, precision);
    let neg = v.is_sign_negative() && v != 0.0;
    let nd = d.len() as i32;
    let mut eprec = precision.map(|p| p as i32).unwrap_or(nd);
    let shortest = precision.is_none();
    if eprec > nd && nd >= dp {
        eprec = nd;
    }
    if shortest {
        eprec = 6;
    }
    let exp = dp - 1;
    let mut prec = precision.map(|p| p as i32).unwrap_or(nd);
    if exp < -4 || exp >= eprec {
        if prec > nd {
            prec = nd;
        }
        let mut out = fmt_e(neg, &d, (prec - 1).max(0) as usize);
        let sign = if exp < 0 { '-' } else { '+' };
        out.push_str(&format!("e{sign}{:02}", exp.abs()));
        return out;
    }
    if prec > dp {
        prec = nd;
    }
    let decimals = (prec - dp).max(0) as usize;
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if dp <= 0 {
        out.push('0');
    } else {
        for i in 0..dp as usize {
            out.push(*d.get(i).unwrap_or(&b'0') as char);
        }
    }
    if decimals > 0 {
        out.push('.');
        for i in 0..decimals as i32 {
            let idx = dp + i;
            let c = if idx < 0 {
                b'0'
            } else {
                *d.get(idx as usize).unwrap_or(&b'0')
            };
            out.push(c as char);
        }
    }
    out
}

/// Go's `%v` of a float64.
pub fn format_v(v: f64) -> String {
    format_g(v, None)
}

/// Go's `%.Nf` / `%f`.
pub fn format_f(v: f64, precision: usize) -> String {
    special(v).unwrap_or_else(|| format!("{v:.precision$}"))
}

/// Go's `%e` with `precision` digits after the point (default 6).
pub fn format_e(v: f64, precision: usize) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    let s = format!("{:.*e}", precision, v);
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let e: i32 = e.parse().unwrap_or(0);
    format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
}

/// Prometheus' `humanize`: SI prefixes, 4 significant digits.
pub fn humanize(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format_g(v, Some(4));
    }
    let mut v = v;
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", format_g(v, Some(4)))
}

/// Prometheus' `humanize1024`: binary prefixes.
pub fn humanize1024(v: f64) -> String {
    if v.abs() <= 1.0 || !v.is_finite() {
        return format_g(v, Some(4));
    }
    let mut v = v;
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", format_g(v, Some(4)))
}

/// Prometheus' `humanizeDuration` (seconds in, `1h 2m 3s` out).
pub fn humanize_duration(v: f64) -> String {
    if !v.is_finite() {
        return format_g(v, Some(4));
    }
    if v == 0.0 {
        return format!("{}s", format_g(v, Some(4)));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        let v = v.abs();
        let duration = v as i64;
        let (seconds, minutes, hours, days) = (
            duration % 60,
            (duration / 60) % 60,
            (duration / 3600) % 24,
            duration / 86400,
        );
        if days != 0 {
            return format!("{sign}{days}d {hours}h {minutes}m {seconds}s");
        }
        if hours != 0 {
            return format!("{sign}{hours}h {minutes}m {seconds}s");
        }
        if minutes != 0 {
            return format!("{sign}{minutes}m {seconds}s");
        }
        return format!("{sign}{}s", format_g(v, Some(4)));
    }
    let mut v = v;
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", format_g(v, Some(4)))
}

/// Prometheus' `humanizePercentage` (0.05 → `5%`).
pub fn humanize_percentage(v: f64) -> String {
    format!("{}%", format_g(v * 100.0, Some(4)))
}

/// One `printf` argument.
#[derive(Clone, Debug)]
pub enum PrintfArg {
    /// A number.
    Num(f64),
    /// A string.
    Str(String),
    /// Anything else, already in its `%v` form.
    Other(String),
}

/// Reads a width or precision as Go's `parsenum` does: `Some(None)` when
/// there are no digits, `None` when the number grows past Go's limit (10^6
/// before its last digit), where Go gives up on the rest of the format.
/// Without the limit, `%99999999999d` asked for a string of that many spaces.
fn parse_num(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<Option<usize>> {
    const TOO_LARGE: usize = 1_000_000;
    let mut num: Option<usize> = None;
    while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
        let n = num.unwrap_or(0);
        if n > TOO_LARGE {
            return None;
        }
        num = Some(n * 10 + d as usize);
        chars.next();
    }
    Some(num)
}

/// Go's `fmt.Sprintf` for the verbs templates use: `%s %v %d %f %g %e %q %x %%`,
/// with flags `-+ 0`, width and precision. Mismatches print as Go does
/// (`%!d(string=x)`), never fail.
pub fn sprintf(format: &str, args: &[PrintfArg]) -> String {
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    let mut next_arg = 0usize;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let (mut minus, mut plus, mut zero, mut space) = (false, false, false, false);
        while let Some(&f) = chars.peek() {
            match f {
                '-' => minus = true,
                '+' => plus = true,
                '0' => zero = true,
                ' ' => space = true,
                _ => break,
            }
            chars.next();
        }
        let Some(width) = parse_num(&mut chars) else {
            out.push_str("%!(NOVERB)");
            break;
        };
        let mut precision: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let Some(p) = parse_num(&mut chars) else {
                out.push_str("%!(NOVERB)");
                break;
            };
            precision = Some(p.unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next_arg) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        next_arg += 1;
        let mut body = match (verb, arg) {
            ('d', PrintfArg::Num(n)) if n.fract() == 0.0 && n.is_finite() => {
                format!("{}", *n as i64)
            }
            ('f' | 'F', PrintfArg::Num(n)) => format_f(*n, precision.unwrap_or(6)),
            ('e', PrintfArg::Num(n)) => format_e(*n, precision.unwrap_or(6)),
            ('g', PrintfArg::Num(n)) => format_g(*n, precision),
            ('v', PrintfArg::Num(n)) => format_v(*n),
            ('x', PrintfArg::Num(n)) if n.fract() == 0.0 => format!("{:x}", *n as i64),
            ('s' | 'v', PrintfArg::Str(s)) => match precision {
                Some(p) => s.chars().take(p).collect(),
                None => s.clone(),
            },
            ('q', PrintfArg::Str(s)) => format!("{s:?}"),
            ('x', PrintfArg::Str(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
            ('s' | 'v', PrintfArg::Other(s)) => s.clone(),
            (v, PrintfArg::Num(n)) => format!("%!{v}(float64={})", format_v(*n)),
            (v, PrintfArg::Str(s)) => format!("%!{v}(string={s})"),
            (v, PrintfArg::Other(s)) => format!("%!{v}({s})"),
        };
        if let PrintfArg::Num(n) = arg
            && matches!(verb, 'd' | 'f' | 'F' | 'e' | 'g' | 'v')
            && *n >= 0.0
        {
            if plus {
                body.insert(0, '+');
            } else if space {
                body.insert(0, ' ');
            }
        }
        let width = width.unwrap_or(0);
        let len = body.chars().count();
        if len < width {
            let pad = width - len;
            if minus {
                body.push_str(&" ".repeat(pad));
            } else if zero && matches!(arg, PrintfArg::Num(_)) {
                let sign_len = usize::from(body.starts_with(['-', '+', ' ']));
                body.insert_str(sign_len, &"0".repeat(pad));
            } else {
                body.insert_str(0, &" ".repeat(pad));
            }
        }
        out.push_str(&body);
    }
    if next_arg < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[next_arg..]
            .iter()
            .map(|a| match a {
                PrintfArg::Num(n) => format!("float64={}", format_v(*n)),
                PrintfArg::Str(s) => format!("string={s}"),
                PrintfArg::Other(s) => s.clone(),
            })
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_widths_and_precisions_stop_like_go_instead_of_allocating() {
        // Found by the `template` fuzz target: the width became a
        // `" ".repeat(n)` the allocator could not serve, aborting the process.
        let n = [PrintfArg::Num(1.0)];
        // The argument left over is reported as Go does.
        let extra = "%!(NOVERB)%!(EXTRA float64=1)";
        assert_eq!(sprintf("a%99999999999999dz", &n), format!("a{extra}"));
        assert_eq!(sprintf("%.99999999999999f", &n), extra);
        assert_eq!(sprintf("%18446744073709551617d", &n), extra);
        // Go's limit: digits are read while the number is at most 10^6.
        assert_eq!(sprintf("%3d|", &n), "  1|");
        assert_eq!(sprintf("%.2f", &n), "1.00");
        assert_eq!(sprintf("%1000001d", &n).len(), 1_000_001);
        assert_eq!(sprintf("%10000010d", &n), extra);
    }

    #[test]
    fn go_v_and_g() {
        // Values checked against Go's fmt.
        assert_eq!(format_v(2.5), "2.5");
        assert_eq!(format_v(1e6), "1e+06");
        assert_eq!(format_v(123456.0), "123456");
        assert_eq!(format_v(1234567.0), "1.234567e+06");
        assert_eq!(format_v(0.0001), "0.0001");
        assert_eq!(format_v(0.00001), "1e-05");
        assert_eq!(format_v(0.0), "0");
        assert_eq!(format_v(-3.0), "-3");
        assert_eq!(format_v(f64::NAN), "NaN");
        assert_eq!(format_g(2.5, Some(4)), "2.5");
        assert_eq!(format_g(1500.0, Some(4)), "1500");
        assert_eq!(format_g(12345.0, Some(4)), "1.234e+04");
        assert_eq!(format_g(1.23456, Some(4)), "1.235");
        assert_eq!(format_g(0.05, Some(4)), "0.05");
    }

    #[test]
    fn prometheus_humanize() {
        // Expectations from Prometheus' template_test.go.
        assert_eq!(humanize(0.0), "0");
        assert_eq!(humanize(1.0), "1");
        assert_eq!(humanize(1234567.0), "1.235M");
        assert_eq!(humanize(12340.0), "12.34k");
        assert_eq!(humanize(0.001234), "1.234m");
        assert_eq!(humanize1024(1048576.0), "1Mi");
        assert_eq!(humanize_duration(0.0), "0s");
        assert_eq!(humanize_duration(1.0), "1s");
        assert_eq!(humanize_duration(60.0), "1m 0s");
        assert_eq!(humanize_duration(3600.0), "1h 0m 0s");
        assert_eq!(humanize_duration(86400.0), "1d 0h 0m 0s");
        assert_eq!(humanize_duration(93784.0), "1d 2h 3m 4s");
        assert_eq!(humanize_duration(0.1), "100ms");
        assert_eq!(humanize_duration(0.0001), "100us");
        assert_eq!(humanize_duration(1.5), "1.5s");
        assert_eq!(humanize_percentage(0.0), "0%");
        assert_eq!(humanize_percentage(0.1234567), "12.35%");
        assert_eq!(humanize_percentage(1.0), "100%");
    }

    #[test]
    fn printf_verbs() {
        let n = |v| PrintfArg::Num(v);
        assert_eq!(sprintf("%.2f", &[n(2.3456)]), "2.35");
        assert_eq!(sprintf("%d items", &[n(3.0)]), "3 items");
        assert_eq!(
            sprintf("%s=%v", &[PrintfArg::Str("a".into()), n(0.5)]),
            "a=0.5"
        );
        assert_eq!(
            sprintf("%5.1f|%-4s|", &[n(3.25), PrintfArg::Str("x".into())]),
            "  3.2|x   |"
        );
        assert_eq!(sprintf("100%%", &[]), "100%");
        assert_eq!(
            sprintf("%d", &[PrintfArg::Str("x".into())]),
            "%!d(string=x)"
        );
        assert_eq!(sprintf("%d %d", &[n(1.0)]), "1 %!d(MISSING)");
    }
}
