//! The UI's words in English and Simplified Chinese (the Chinese in
//! `templates/i18n/zh.tsv`, beside the templates).

use std::collections::HashMap;
use std::sync::OnceLock;

/// A UI language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// English.
    En,
    /// Simplified Chinese.
    Zh,
}

impl Lang {
    /// From `?lang=`, then the `lang` cookie, then `Accept-Language`.
    pub fn pick(query: Option<&str>, cookie: Option<&str>, accept_language: Option<&str>) -> Lang {
        let parse = |s: &str| {
            let s = s.trim().to_lowercase();
            if s.starts_with("zh") {
                Some(Lang::Zh)
            } else if s.starts_with("en") {
                Some(Lang::En)
            } else {
                None
            }
        };
        query
            .and_then(parse)
            .or_else(|| cookie.and_then(parse))
            .or_else(|| {
                accept_language.and_then(|h| {
                    h.split(',')
                        .map(|part| part.split(';').next().unwrap_or(""))
                        .find_map(parse)
                })
            })
            .unwrap_or(Lang::En)
    }

    /// `en` or `zh-CN`, for `<html lang>`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-CN",
        }
    }

    /// The word for `key` (the key itself when untranslated).
    pub fn t(self, key: &str) -> &str {
        match self {
            Lang::En => key,
            Lang::Zh => zh().get(key).copied().unwrap_or(key),
        }
    }
}

/// The Chinese words, kept beside the templates that show them.
const ZH: &str = include_str!("../../../templates/i18n/zh.tsv");

/// English → Chinese, read from [`ZH`] once (`#` lines are comments).
fn zh() -> &'static HashMap<&'static str, &'static str> {
    static TABLE: OnceLock<HashMap<&'static str, &'static str>> = OnceLock::new();
    TABLE.get_or_init(|| {
        ZH.lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once('\t'))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_language_by_priority() {
        assert_eq!(
            Lang::pick(None, None, Some("zh-CN,zh;q=0.9,en;q=0.8")),
            Lang::Zh
        );
        assert_eq!(Lang::pick(Some("en"), Some("zh"), Some("zh-CN")), Lang::En);
        assert_eq!(Lang::pick(None, Some("zh"), Some("en-US")), Lang::Zh);
        assert_eq!(Lang::pick(None, None, None), Lang::En);
        assert_eq!(Lang::Zh.t("Alerts"), "告警");
        assert_eq!(Lang::Zh.t("not a word"), "not a word");
        assert_eq!(Lang::En.t("Alerts"), "Alerts");
    }

    /// Every line of the table is `English<TAB>Chinese`, each word once.
    #[test]
    fn translation_table_is_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for line in ZH
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        {
            let parts: Vec<&str> = line.split('\t').collect();
            assert_eq!(parts.len(), 2, "not English<TAB>Chinese: {line:?}");
            assert!(!parts[0].is_empty() && !parts[1].is_empty(), "{line:?}");
            assert!(seen.insert(parts[0]), "{:?} twice", parts[0]);
        }
        assert_eq!(zh().len(), seen.len());
        assert_eq!(
            Lang::Zh.t("Too many failed logins for this user; try again in {n} min"),
            "该用户登录失败次数过多，请 {n} 分钟后再试"
        );
    }
}
