//! `recovery report`: the funnel per day of submission, as a text table, as JSON,
//! or as one self-contained HTML page with an SVG chart (no scripts, no external
//! files: it opens from disk or as an email attachment).

use std::fmt::Write as _;

use shared::report::{Funnel, Report};

/// "2h 05m", "45m", "3d 4h"; "-" when unknown.
pub fn duration_text(seconds: Option<i64>) -> String {
    let Some(seconds) = seconds else {
        return "-".into();
    };
    let minutes = seconds.max(0) / 60;
    match (minutes / 1440, (minutes % 1440) / 60, minutes % 60) {
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m:02}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

fn percent(rate: f64, requested: usize) -> String {
    if requested == 0 {
        "-".into()
    } else {
        format!("{:.0}%", rate * 100.0)
    }
}

const COLUMNS: [&str; 10] = [
    "day",
    "submitted",
    "booked directly",
    "requested",
    "follow-up sent",
    "scheduled",
    "re-entered nurture",
    "failed",
    "booking rate",
    "median time to book",
];

fn cells(label: &str, f: &Funnel) -> [String; 10] {
    [
        label.to_string(),
        f.submitted.to_string(),
        f.booked_directly.to_string(),
        f.requested.to_string(),
        f.follow_up_sent.to_string(),
        f.scheduled.to_string(),
        f.re_entered_nurture.to_string(),
        f.failed.to_string(),
        percent(f.booking_rate, f.requested),
        duration_text(f.median_seconds_to_book),
    ]
}

fn rows(report: &Report) -> Vec<[String; 10]> {
    let mut rows: Vec<[String; 10]> = report
        .days
        .iter()
        .map(|d| cells(&d.day.to_string(), &d.funnel))
        .collect();
    rows.push(cells("total", &report.total));
    rows
}

/// A fixed-width text table, one line per day and a total.
pub fn table(report: &Report) -> String {
    let rows = rows(report);
    let widths: Vec<usize> = (0..COLUMNS.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([COLUMNS[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[&str]| {
        cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, width))| {
                if i == 0 {
                    format!("{cell:<width$}")
                } else {
                    format!("{cell:>width$}")
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    let mut out = line(&COLUMNS) + "\n";
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        out += &(line(&cells) + "\n");
    }
    out
}

pub fn json(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("the report serializes")
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Bars per day (submitted, requested, scheduled) on the left axis, the booking rate
/// as a line on the right axis.
pub fn svg(report: &Report) -> String {
    const SERIES: [(&str, &str); 3] = [
        ("submitted", "#9fb3c8"),
        ("requested", "#3b82f6"),
        ("scheduled", "#16a34a"),
    ];
    const RATE_COLOR: &str = "#d97706";
    let (left, right, top, bottom) = (56.0, 56.0, 40.0, 88.0);
    let days = report.days.len().max(1) as f64;
    let slot = (880.0 / days).clamp(14.0, 64.0);
    let plot_w = slot * days;
    let plot_h = 260.0;
    let width = left + plot_w + right;
    let height = top + plot_h + bottom;
    let max = report
        .days
        .iter()
        .map(|d| d.funnel.submitted)
        .max()
        .unwrap_or(0)
        .max(1);
    let step = nice_step(max);
    let y_max = (max.div_ceil(step) * step) as f64;
    let y = |v: f64| top + plot_h - v / y_max * plot_h;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0} {height:.0}" width="{width:.0}" height="{height:.0}" font-family="system-ui, sans-serif" font-size="12" role="img" aria-label="Recovery funnel per day">"#
    );
    // Grid and left axis (leads), right axis (booking rate).
    let mut v = 0;
    while v as f64 <= y_max {
        let at = y(v as f64);
        let _ = write!(
            s,
            r##"<line x1="{left}" x2="{:.1}" y1="{at:.1}" y2="{at:.1}" stroke="#e5e7eb"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#374151">{v}</text>"##,
            left + plot_w,
            left - 6.0,
            at + 4.0
        );
        v += step;
    }
    for pct in [0, 25, 50, 75, 100] {
        let at = top + plot_h - pct as f64 / 100.0 * plot_h;
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" fill="{RATE_COLOR}">{pct}%</text>"#,
            left + plot_w + 6.0,
            at + 4.0
        );
    }
    let _ = write!(
        s,
        r##"<text x="{left}" y="20" font-weight="600" fill="#111827">Leads per day of submission</text><text x="{:.1}" y="20" text-anchor="end" fill="{RATE_COLOR}">booking rate</text>"##,
        left + plot_w + right - 4.0
    );
    // Bars.
    let bar_w = (slot * 0.8) / SERIES.len() as f64;
    let label_every = ((report.days.len() as f64 / 15.0).ceil() as usize).max(1);
    let mut rate_points = Vec::new();
    for (i, day) in report.days.iter().enumerate() {
        let x0 = left + i as f64 * slot + slot * 0.1;
        let f = &day.funnel;
        for (k, (name, color)) in SERIES.iter().enumerate() {
            let value = match *name {
                "submitted" => f.submitted,
                "requested" => f.requested,
                _ => f.scheduled,
            } as f64;
            let _ = write!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="{bar_w:.1}" height="{:.1}" fill="{color}"><title>{} {name}: {value}</title></rect>"#,
                x0 + k as f64 * bar_w,
                y(value),
                top + plot_h - y(value),
                day.day
            );
        }
        if i % label_every == 0 {
            let _ = write!(
                s,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="end" transform="rotate(-45 {:.1} {:.1})" fill="#374151">{}</text>"##,
                x0 + slot * 0.4,
                top + plot_h + 14.0,
                x0 + slot * 0.4,
                top + plot_h + 14.0,
                day.day.format("%b %d")
            );
        }
        if f.requested > 0 {
            rate_points.push((
                x0 + slot * 0.4,
                top + plot_h - f.booking_rate * plot_h,
                day.day,
                f.booking_rate,
            ));
        }
    }
    if rate_points.len() > 1 {
        let points: Vec<String> = rate_points
            .iter()
            .map(|(x, y, _, _)| format!("{x:.1},{y:.1}"))
            .collect();
        let _ = write!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{RATE_COLOR}" stroke-width="2"/>"#,
            points.join(" ")
        );
    }
    for (x, y, day, rate) in &rate_points {
        let _ = write!(
            s,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="3.5" fill="{RATE_COLOR}"><title>{day} booking rate: {:.0}%</title></circle>"#,
            rate * 100.0
        );
    }
    // Legend.
    let legend_y = height - 14.0;
    let mut x = left;
    for (name, color) in SERIES {
        let _ = write!(
            s,
            r##"<rect x="{x:.1}" y="{:.1}" width="12" height="12" fill="{color}"/><text x="{:.1}" y="{legend_y:.1}" fill="#374151">{name}</text>"##,
            legend_y - 10.0,
            x + 16.0
        );
        x += 100.0;
    }
    let _ = write!(
        s,
        r##"<line x1="{x:.1}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="{RATE_COLOR}" stroke-width="2"/><text x="{:.1}" y="{legend_y:.1}" fill="#374151">booking rate (scheduled / requested)</text>"##,
        x + 14.0,
        legend_y - 4.0,
        legend_y - 4.0,
        x + 18.0
    );
    s.push_str("</svg>");
    s
}

/// 1, 2 or 5 times a power of ten, for about five grid lines.
fn nice_step(max: usize) -> usize {
    let rough = (max as f64 / 5.0).max(1.0);
    let power = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|s| *s >= rough)
        .unwrap_or(10.0 * power);
    step as usize
}

/// The page: headline figures, the chart, and the table.
pub fn html(report: &Report) -> String {
    let t = &report.total;
    let tiles = [
        ("Submitted", t.submitted.to_string()),
        ("Booked directly", t.booked_directly.to_string()),
        ("Recovery requested", t.requested.to_string()),
        ("Scheduled", t.scheduled.to_string()),
        ("Booking rate", percent(t.booking_rate, t.requested)),
        (
            "Median time to book",
            duration_text(t.median_seconds_to_book),
        ),
    ];
    let mut page = String::new();
    let _ = write!(
        page,
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Lead recovery {from} to {to}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #111827; }}
.tiles {{ display: flex; flex-wrap: wrap; gap: 1rem; margin: 1rem 0 1.5rem; }}
.tile {{ border: 1px solid #e5e7eb; border-radius: 8px; padding: .75rem 1rem; min-width: 9rem; }}
.tile b {{ display: block; font-size: 1.6rem; }}
table {{ border-collapse: collapse; margin-top: 1.5rem; font-size: .9rem; }}
th, td {{ padding: .3rem .6rem; border-bottom: 1px solid #e5e7eb; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
tr:last-child td {{ font-weight: 600; }}
p.note {{ color: #4b5563; max-width: 50rem; }}
</style></head><body>
<h1>Lead recovery, {from} to {to}</h1>
<p class="note">Leads by day of submission (UTC). Requested: SkipUp was asked to recover the lead. Booking rate: scheduled out of requested. Time to book: from the form submission to the meeting being scheduled.</p>
<div class="tiles">"#,
        from = report.from,
        to = report.to
    );
    for (label, value) in tiles {
        let _ = write!(
            page,
            r#"<div class="tile">{}<b>{}</b></div>"#,
            escape(label),
            escape(&value)
        );
    }
    page.push_str("</div>\n");
    page.push_str(&svg(report));
    page.push_str("\n<table><thead><tr>");
    for column in COLUMNS {
        let _ = write!(page, "<th>{}</th>", escape(column));
    }
    page.push_str("</tr></thead><tbody>\n");
    for row in rows(report) {
        page.push_str("<tr>");
        for cell in row {
            let _ = write!(page, "<td>{}</td>", escape(&cell));
        }
        page.push_str("</tr>\n");
    }
    page.push_str("</tbody></table>\n</body></html>\n");
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_person_would_write_them() {
        assert_eq!(duration_text(None), "-");
        assert_eq!(duration_text(Some(59)), "0m");
        assert_eq!(duration_text(Some(45 * 60)), "45m");
        assert_eq!(duration_text(Some(2 * 3600 + 5 * 60)), "2h 05m");
        assert_eq!(duration_text(Some(3 * 86400 + 4 * 3600 + 59)), "3d 4h");
    }

    #[test]
    fn grid_steps_are_round_numbers() {
        assert_eq!(nice_step(1), 1);
        assert_eq!(nice_step(9), 2);
        assert_eq!(nice_step(40), 10);
        assert_eq!(nice_step(230), 50);
    }
}
