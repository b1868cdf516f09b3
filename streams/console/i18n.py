"""Every text of the console in Chinese (zh-CN) and English, and how a language is chosen.

A page's language is the ``closedloop_lang`` cookie (set by the language switch) when it
names one, else the first of the browser's ``Accept-Language`` that the console speaks, else
Chinese (a Chinese city's command centre). Templates call ``t(key, **values)``; a key missing
in either language is a test failure, never an English word on a Chinese page.
"""

from __future__ import annotations

from datetime import date, datetime, tzinfo
from typing import Final

__all__ = [
    "DEFAULT",
    "KINDS",
    "LANGS",
    "MESSAGES",
    "choose",
    "day",
    "instant",
    "kind_name",
    "number",
    "text",
]

LANGS: Final = ("zh", "en")
DEFAULT: Final = "zh"

KINDS: Final[dict[str, tuple[str, str]]] = {
    "unlocated": ("Pushed traveller not located", "推送人员未及时落位"),
    "followup_overdue": ("Follow-up overdue", "随访超期（未日清）"),
    "test_missed": ("Test missed", "应检未检"),
    "positive": ("Positive (single tube)", "单管阳性"),
    "pool_positive": ("Pooled tube positive", "混管阳性"),
    "retest_missed": ("Single-tube retest overdue", "复核采样超时"),
    "lab_sla_breached": ("Transport or lab deadline missed", "送检／检测超时"),
    "orphan_result": ("Result without sampling", "有结果无采样信息"),
    "identity_suspect": ("Suspected borrowed identity", "疑似借用、套用他人信息检测"),
    "round_missed": ("Missed in a testing round", "应检未检（区域核酸）"),
    "entry_without_proof": ("Entry without a negative proof", "无 48 小时核酸阴性证明"),
    "landing_test_missed": ("Landing test missed", "落地检未检"),
    "sentinel_untested": ("Sentinel visit untested", "哨点就诊未检测"),
    "late_entries": ("Records entered late", "数据录入迟报"),
    "lab_silent": ("Lab silent", "实验室无结果回传"),
    "rectification_overdue": ("Rectification overdue", "整改超期"),
    "recheck_missed": ("Look-back recheck missed", "回头看未复查"),
    "recheck_failed": ("Recheck failed", "复查未通过"),
    "repeat_offender": ("Repeat finding", "屡督屡犯"),
}
"""Each alert kind's name for people (the contract's and docs/OPERATORS.md's)."""

# key: (English, Chinese). Values are str.format templates.
MESSAGES: Final[dict[str, tuple[str, str]]] = {
    "app": ("closedloop command centre", "closedloop 指挥部"),
    "nav.today": ("Today", "今日"),
    "nav.alerts": ("Alerts", "预警"),
    "nav.rounds": ("Rounds", "区域核酸"),
    "nav.timeline": ("Timeline", "轨迹"),
    "nav.subject": ("Person, tube or unit id", "人员、试管或单位编号"),
    "nav.open": ("Open", "查看"),
    "nav.signed_in": ("{name} ({role})", "{name}（{role}）"),
    "nav.sign_out": ("Sign out", "退出"),
    "nav.menu": ("Menu", "菜单"),
    "lang.switch": ("Language", "语言"),
    "lang.zh": ("中文", "中文"),
    "lang.en": ("English", "English"),
    "role.viewer": ("viewer", "查看员"),
    "role.operator": ("operator", "处置员"),
    "role.admin": ("administrator", "管理员"),
    "scope.city": ("whole city", "全市"),
    "scope.districts": ("districts: {districts}", "辖区：{districts}"),
    "login.title": ("Sign in", "登录"),
    "login.username": ("Account", "账号"),
    "login.password": ("Password", "密码"),
    "login.submit": ("Sign in", "登录"),
    "login.failed": ("Wrong account or password.", "账号或密码错误。"),
    "login.locked": ("Too many failed sign-ins for this account or from this address: try "
                     "again after {until}.",
                     "该账号或该地址登录失败次数过多，请于 {until} 后再试。"),
    "login.hint": ("Accounts are made by an administrator with {command}.",
                   "账号由管理员用 {command} 创建。"),
    "today.title": ("Today (daily closure)", "今日（日清日结）"),
    "today.report_of": ("Daily report of {day}, cut-off {cutoff}; open alerts as of now.",
                        "{day} 日报（截止 {cutoff}）；未办结预警为当前数。"),
    "today.no_report": ("No daily report in the ledger yet; open alerts as of now.",
                        "账本中尚无日报；未办结预警为当前数。"),
    "today.ranked": ("Ranked by what is behind: alerts at the city command (level 3), at the "
                     "district command (level 2), overdue follow-ups, then open alerts.",
                     "按滞后程度排序：市指挥部（3 级）预警、区指挥部（2 级）预警、随访超期、"
                     "未办结预警。"),
    "today.nothing": ("Nothing to show: no report and no open alert in your districts.",
                      "暂无内容：辖区内没有日报，也没有未办结预警。"),
    "today.trend": ("Overdue follow-ups, last {days} days", "随访超期人数（近 {days} 天）"),
    "today.trend_none": ("no report", "无日报"),
    "today.findings": ("Open supervision findings", "督导检查问题未销号"),
    "today.findings_lede": ("Findings not closed by a passed look-back recheck, as of now, by "
                            "severity; the daily report's counts are at its cut-off.",
                            "尚未经回头看复查通过销号的问题，为当前数，按严重程度；日报各数为截止时点数。"),
    "col.open_findings": ("Open now", "当前未销号"),
    "col.findings_open": ("Open at the cut-off", "截止时未销号"),
    "col.findings_new": ("New in the report", "日报新发现"),
    "col.rectifications_overdue": ("Rectifications overdue", "整改超期"),
    "col.rechecks_failed": ("Rechecks failed", "复查未通过"),
    "col.repeat_offenders": ("Repeat findings", "屡督屡犯"),
    "severity.critical": ("Critical", "严重"),
    "severity.major": ("Major", "较重"),
    "severity.minor": ("Minor", "一般"),
    "col.district": ("District", "区"),
    "col.followup_overdue_open": ("Follow-ups overdue", "随访超期"),
    "col.tests_missed": ("Tests missed", "应检未检"),
    "col.positives": ("Positives", "阳性"),
    "col.pushed": ("Pushed", "推送"),
    "col.located": ("Located", "落位"),
    "col.open": ("Open alerts", "未办结预警"),
    "col.level2": ("Level 2 (district)", "2 级（区）"),
    "col.level3": ("Level 3 (city)", "3 级（市）"),
    "col.due_at": ("Due", "到期时间"),
    "col.raised_at": ("Raised", "预警时间"),
    "col.kind": ("Kind", "预警类型"),
    "col.subject": ("Subject", "对象"),
    "col.state": ("Status", "状态"),
    "col.level": ("Level", "级别"),
    "col.assigned_to": ("Assigned to", "指派给"),
    "col.last_action": ("Latest action", "最近处置"),
    "col.alert_id": ("Alert", "预警编号"),
    "col.note": ("Note", "备注"),
    "col.details": ("Details", "详情"),
    "col.in_scope": ("In scope", "应检"),
    "col.sampled": ("Sampled", "已检"),
    "col.missed": ("Missed", "未检"),
    "col.caught_up": ("Caught up", "已补采"),
    "col.not_on_roster": ("Not on the roster", "名单外"),
    "col.coverage": ("Coverage", "覆盖率"),
    "col.grid": ("Grid", "网格"),
    "col.person": ("Person", "人员"),
    "col.caught_up_at": ("Caught up at", "补采时间"),
    "col.sampled_after_close": ("Sampled after the close", "关闭后采样"),
    "col.at": ("When", "时间"),
    "col.what": ("What", "事件"),
    "col.select": ("Select", "选择"),
    "total": ("Total", "合计"),
    "no_district": ("(no district: city level)", "（无区：市级）"),
    "none": ("–", "–"),
    "state.raised": ("raised", "待处置"),
    "state.acknowledged": ("acknowledged", "已签收"),
    "state.resolved": ("resolved", "已办结"),
    "state.caught_up": ("caught up", "已补采"),
    "state.open": ("open (raised or acknowledged)", "未办结（待处置或已签收）"),
    "state.all": ("all", "全部"),
    "level.1": ("1 as raised", "1 级（初始）"),
    "level.2": ("2 district command", "2 级（区指挥部）"),
    "level.3": ("3 city command", "3 级（市指挥部）"),
    "action.ack": ("Acknowledge", "签收"),
    "action.resolve": ("Resolve", "办结"),
    "action.assign": ("Assign", "指派"),
    "done.ack": ("acknowledged", "签收"),
    "done.resolve": ("resolved", "办结"),
    "done.assign": ("assigned", "指派"),
    "alerts.title": ("Alerts", "预警"),
    "alerts.any": ("any", "全部"),
    "alerts.kind": ("Kind", "类型"),
    "alerts.district": ("District", "区"),
    "alerts.status": ("Status", "状态"),
    "alerts.round": ("Round", "轮次"),
    "alerts.level": ("Level", "级别"),
    "alerts.from": ("Due from", "到期起"),
    "alerts.to": ("Due to", "到期止"),
    "alerts.sort": ("Order", "排序"),
    "sort.newest": ("newest first", "最新优先"),
    "sort.severity": ("most severe first", "最严重优先"),
    "sort.due": ("oldest due first", "最早到期优先"),
    "alerts.filter": ("Filter", "筛选"),
    "alerts.reset": ("Reset", "重置"),
    "alerts.csv": ("Download CSV", "下载 CSV"),
    "alerts.count": ("{first}–{last} of {total}", "第 {first}–{last} 条，共 {total} 条"),
    "alerts.count_more": ("{first}–{last} of more than {total}",
                          "第 {first}–{last} 条，共 {total} 条以上"),
    "alerts.none": ("No alert matches these filters.", "没有符合筛选条件的预警。"),
    "alerts.prev": ("Previous", "上一页"),
    "alerts.next": ("Next", "下一页"),
    "alerts.act_title": ("Act on the selected alerts", "处置所选预警"),
    "alert.act_title": ("Act on this alert", "处置此预警"),
    "alerts.action": ("Action", "处置"),
    "alerts.note": ("Note", "备注"),
    "alerts.assignee": ("Assign to (operator)", "指派给（处置员）"),
    "alerts.submit": ("Apply", "提交"),
    "alerts.viewer": ("Your account may read, not act.", "您的账号只能查看，不能处置。"),
    "alerts.via": ("Actions go to {where}.", "处置写入{where}。"),
    "via.ledger": ("the ledger", "账本"),
    "via.kafka": ("Kafka's action topic (the worker decides, the sink records)",
                  "Kafka 处置主题（由 worker 判定、sink 记录）"),
    "alerts.csv_too_many": ("More than {limit} alerts match: narrow the filters to download "
                            "them.", "符合条件的预警超过 {limit} 条，请缩小筛选范围后再下载。"),
    "flash.done": ("{action}: {count} alert(s).", "{action}：{count} 条预警。"),
    "flash.refused": ("Not done for {alert}: {reason}", "{alert} 未处置：{reason}"),
    "flash.none_selected": ("Select at least one alert.", "请至少选择一条预警。"),
    "reason.unknown_alert": ("no such alert in your districts", "辖区内无此预警"),
    "reason.not_subjects_alert": ("its subject is not the alert's", "对象与预警不符"),
    "reason.alert_closed": ("the alert is closed (resolved or caught up)",
                            "预警已关闭（已办结或已补采）"),
    "reason.escalation_over": ("the alert's escalation had already ended", "预警升级已结束"),
    "reason.bad_request": ("the request is not valid: {detail}", "请求无效：{detail}"),
    "reason.forbidden": ("your account may not act on alerts", "您的账号无权处置预警"),
    "reason.kafka": ("Kafka did not answer: {detail}", "Kafka 无响应：{detail}"),
    "alert.title": ("Alert {alert_id}", "预警 {alert_id}"),
    "alert.timeline": ("Timeline of {subject}", "{subject} 的轨迹"),
    "alert.acknowledged": ("Acknowledged by {by} at {at}", "{by} 于 {at} 签收"),
    "alert.resolved": ("Resolved by {by} at {at}", "{by} 于 {at} 办结"),
    "alert.assigned": ("Assigned to {to} at {at}", "{at} 指派给 {to}"),
    "alert.escalated": ("Escalated to level {level} at {at}", "{at} 升级至 {level} 级"),
    "alert.closed": ("This alert is closed: it takes no action.", "该预警已关闭，不能再处置。"),
    "rounds.title": ("Testing rounds", "区域核酸"),
    "rounds.none": ("No testing round in the ledger yet.", "账本中尚无区域核酸轮次。"),
    "rounds.reports": ("{count} report(s), latest: {stage} as of {as_of}",
                       "共 {count} 份报告，最新：{stage}，截至 {as_of}"),
    "stage.progress": ("progress", "进展"),
    "stage.close": ("close", "关闭"),
    "stage.final": ("final", "最终"),
    "round.title": ("Round {round_id}", "轮次 {round_id}"),
    "round.report": ("Coverage by district: {stage} report as of {as_of}.",
                     "各区覆盖情况：{stage}报告，截至 {as_of}。"),
    "round.chart": ("Coverage over time (sampled while open ÷ in scope)",
                    "覆盖率变化（开放期间已检 ÷ 应检）"),
    "round.catchup": ("Catch-up list (查漏补测) per grid", "查漏补测名单（按网格）"),
    "round.pending": ("Showing those still to be sampled.", "仅显示仍需补采的人员。"),
    "round.all": ("Showing everyone missed, caught up or not.", "显示全部未检人员（含已补采）。"),
    "round.show_all": ("Show everyone missed", "显示全部未检人员"),
    "round.show_pending": ("Show only those still to be sampled", "仅显示仍需补采"),
    "round.download_csv": ("Download CSV", "下载 CSV"),
    "round.download_xlsx": ("Download Excel (one sheet per grid)", "下载 Excel（每个网格一页）"),
    "round.nobody": ("Nobody to catch up.", "无需补采。"),
    "round.grid_count": ("{count} person(s)", "{count} 人"),
    "round.no_grid": ("no grid", "无网格"),
    "timeline.title": ("Timeline of {subject}", "{subject} 的轨迹"),
    "timeline.audited": ("Your view of this timeline is recorded (who, when, which subject).",
                         "本次查看已记录（查看人、时间、对象）。"),
    "timeline.count": ("{count} entries, oldest first.", "共 {count} 条，按时间先后排列。"),
    "what.alert": ("alert", "预警"),
    "what.action": ("action", "处置"),
    "what.action_ignored": ("action ignored", "处置未生效"),
    "what.escalation": ("escalation", "升级"),
    "what.caught_up": ("caught up", "补采"),
    "what.rejected": ("rejected record", "被拒记录"),
    "what.finding": ("finding", "督导发现问题"),
    "what.rectified": ("rectified", "整改"),
    "what.recheck": ("recheck", "回头看"),
    "tl.finding": ("finding {finding_id}: {category}, {severity} ({unit_kind}, district "
                   "{district}); {state}",
                   "问题 {finding_id}：{category}，{severity}（{unit_kind}，{district}）；{state}"),
    "tl.finding_open": ("open", "未销号"),
    "tl.finding_closed": ("closed by a passed recheck", "复查通过已销号"),
    "tl.rectified": ("finding {finding_id} rectified", "问题 {finding_id} 已整改"),
    "tl.recheck_pass": ("finding {finding_id} rechecked: passed", "问题 {finding_id} 回头看：通过"),
    "tl.recheck_fail": ("finding {finding_id} rechecked: failed, open again",
                        "问题 {finding_id} 回头看：未通过，重新整改"),
    "tl.alert": ("{kind} raised, due {due}, district {district}",
                 "{kind}预警，到期 {due}，{district}"),
    "tl.caught_up": ("{kind} closed by the system: sampled within the catch-up window",
                     "{kind}已由系统关闭：在补采时限内已采样"),
    "tl.escalation2": ("escalated to level 2 (district command)", "升级至 2 级（区指挥部）"),
    "tl.escalation3": ("escalated to level 3 (city command)", "升级至 3 级（市指挥部）"),
    "tl.action": ("{done} by {operator}", "{operator} {done}"),
    "tl.assignee": (" to {assignee}", "给 {assignee}"),
    "tl.via": (" (via {via})", "（经{via}）"),
    "tl.effective": (" (via {via}; effective in the engine at {at})",
                     "（经{via}；引擎中于 {at} 生效）"),
    "tl.note": (": {note}", "：{note}"),
    "tl.ignored": (" — ignored: {reason}", " — 未生效：{reason}"),
    "tl.line": ("line {line}", "第 {line} 行"),
    "tl.rejected": ("a {topic} record rejected ({reason}) at {where}: {message}",
                    "{topic} 记录被拒（{reason}），位置 {where}：{message}"),
    "via_short.ledger": ("the ledger", "账本"),
    "via_short.kafka": ("Kafka", "Kafka"),
    "via_short.replay": ("a replayed file", "回放文件"),
    "error.title": ("Error", "错误"),
    "error.404": ("Not found.", "未找到。"),
    "error.404_subject": ("Nothing about {subject} in the ledger for your account.",
                          "账本中没有您可查看的 {subject} 的记录。"),
    "error.404_alert": ("No alert {alert_id} in your districts.", "辖区内无预警 {alert_id}。"),
    "error.404_round": ("No testing round {round_id} in the ledger.", "账本中无轮次 {round_id}。"),
    "error.unknown_value": ("No {field} \u201c{value}\u201d in the ledger for your account. "
                            "Known: {known}.",
                            "账本中没有您可查看的{field}\u201c{value}\u201d。已有：{known}。"),
    "error.raw_id": ("That looks like a resident ID or mobile number: the ledger holds "
                     "pseudonyms only.", "该编号疑似身份证号或手机号：账本只保存化名编号。"),
    "error.403": ("Refused: this form has expired or did not come from the console. Go back, "
                  "reload the page and try again.",
                  "已拒绝：表单已过期或并非来自本系统。请返回、刷新页面后重试。"),
    "error.403_role": ("Your account may not do this.", "您的账号无权执行此操作。"),
    "error.400": ("The request is not valid: {detail}", "请求无效：{detail}"),
    "error.back": ("Back to today", "返回今日"),
    "field.kind": ("kind", "预警类型"),
    "field.district": ("district", "区"),
    "field.state": ("status", "状态"),
    "field.level": ("level", "级别"),
    "field.round": ("round", "轮次"),
    "field.status": ("status", "状态"),
    "known.none": ("none yet", "暂无"),
    "skip": ("Skip to the content", "跳到正文"),
    "chart.max": ("max {value}", "最大 {value}"),
}


def choose(cookie: str | None, accept_language: str | None) -> str:
    """The page's language: the cookie's, else the browser's first we speak, else Chinese."""
    if cookie in LANGS:
        return cookie
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGS and quality > 0:
            ranked.append((-quality, position, primary))
    return min(ranked)[2] if ranked else DEFAULT


def text(lang: str, key: str, **values: object) -> str:
    """The text of ``key`` in ``lang`` with ``values`` put in (KeyError for an unknown key:
    a template naming one fails its test)."""
    english, chinese = MESSAGES[key]
    template = chinese if lang == "zh" else english
    return template.format(**values) if values else template


def kind_name(lang: str, kind: str) -> str:
    """An alert kind for people; a kind of a later contract shows as its code."""
    names = KINDS.get(kind)
    return kind if names is None else names[1 if lang == "zh" else 0]


def number(value: int | float | None) -> str:
    """A count with thousands grouped (the same in both languages: 12,345), or a dash."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}"


def instant(value: datetime | None, zone: tzinfo) -> str:
    """An instant in the city's zone, to the minute: 2022-09-08 14:05."""
    return "–" if value is None else value.astimezone(zone).strftime("%Y-%m-%d %H:%M")


_MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                  "Dec")


def day(value: date, lang: str) -> str:
    """A day on a chart's axis: 9月8日, or 8 Sep (whatever the server's locale)."""
    return (f"{value.month}月{value.day}日" if lang == "zh"
            else f"{value.day} {_MONTHS[value.month - 1]}")
