//! The UI's words in English and Simplified Chinese.

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
        let zh = match key {
            "Overview" => "概览",
            "Explore" => "查询",
            "Targets" => "采集目标",
            "Alerts" => "告警",
            "Snapshots" => "快照",
            "Status" => "状态",
            "Dashboards" => "仪表盘",
            "Run" => "执行",
            "Graph" => "图表",
            "Table" => "表格",
            "Range" => "时间范围",
            "Refresh" => "刷新",
            "off" => "关闭",
            "No data" => "无数据",
            "Version" => "版本",
            "Uptime" => "运行时间",
            "Configuration" => "配置",
            "Models" => "模型",
            "Storage" => "存储",
            "Day" => "日期",
            "Files" => "文件",
            "Series" => "序列",
            "Samples" => "样本",
            "Take a snapshot now" => "立即生成快照",
            "Whole-store backups" => "整库备份",
            "Size" => "大小",
            "Restore one into a stopped infermon with: infermon restore FILE --data-dir DIR" => {
                "在 infermon 停止后用以下命令恢复：infermon restore 文件 --data-dir 目录"
            }
            "Unsupported panel type" => "不支持的面板类型",
            "Query error" => "查询错误",
            "Language" => "语言",
            "Expression" => "表达式",
            "Value" => "值",
            "Labels" => "标签",
            "Health" => "健康",
            "Last scrape" => "上次采集",
            "Duration" => "耗时",
            "Error" => "错误",
            "State" => "状态",
            "Since" => "开始于",
            "Silences" => "静默",
            "Silence" => "静默",
            "Create silence" => "创建静默",
            "Expire" => "失效",
            "Rules" => "规则",
            "Notifications" => "通知记录",
            "Log in" => "登录",
            "Log out" => "退出登录",
            "User name" => "用户名",
            "Password" => "密码",
            "Wrong user name or password" => "用户名或密码错误",
            "Too many failed logins for this user; try again in {n} min" => {
                "该用户登录失败次数过多，请 {n} 分钟后再试"
            }
            "The form expired; log in again" => "表单已过期，请重新登录",
            "Forbidden" => "无权操作",
            "Back to the overview" => "返回概览",
            "read-only" => "只读",
            "Upload a Grafana dashboard (JSON)" => "上传 Grafana 仪表盘（JSON）",
            "Upload" => "上传",
            "Uploaded" => "已上传",
            "Delete" => "删除",
            "built-in" => "内置",
            "configured" => "配置文件",
            "uploaded" => "已上传",
            _ => key,
        };
        match self {
            Lang::En => key,
            Lang::Zh => zh,
        }
    }
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
    }
}
