//! The charts, as inline SVG.

use std::fmt::Write as _;

use chrono::Datelike;

use super::html::esc;
use super::i18n::{french_unit, Lang};
use super::model::{Day, Status};

const CHART_W: f64 = 700.0;
const CHART_H: f64 = 190.0;
const PAD_L: f64 = 66.0;
const PAD_R: f64 = 8.0;
const PAD_T: f64 = 10.0;
const PAD_B: f64 = 24.0;

/// A vertical axis for sizes: its top and its labelled ticks.
fn size_axis(lang: Lang, max: u64) -> (f64, Vec<(f64, String)>) {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let max = max.max(1) as f64;
    let mut k = 0;
    while k + 1 < UNITS.len() && max >= 1024f64.powi(k as i32 + 1) {
        k += 1;
    }
    let unit = 1024f64.powi(k as i32);
    let scaled = max / unit;
    let raw = scaled / 4.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let ticks = (scaled / step).ceil().max(1.0) as usize;
    let name = match lang {
        Lang::Fr => french_unit(UNITS[k]),
        Lang::En => UNITS[k],
    };
    let labels = (0..=ticks)
        .map(|i| {
            let v = step * i as f64;
            let text = if (v - v.round()).abs() < 1e-9 {
                format!("{v:.0} {name}")
            } else {
                let s = format!("{v:.1} {name}");
                if lang == Lang::Fr {
                    s.replace('.', ",")
                } else {
                    s
                }
            };
            (v * unit, text)
        })
        .collect();
    (step * ticks as f64 * unit, labels)
}

/// The frame, grid and labels shared by both charts; returns the SVG
/// opening and a mapping of (day index, value) to coordinates.
fn chart_frame(lang: Lang, days: &[Day], max: u64, title: &str) -> (String, f64, f64) {
    let (top, ticks) = size_axis(lang, max);
    let plot_w = CHART_W - PAD_L - PAD_R;
    let plot_h = CHART_H - PAD_T - PAD_B;
    let mut s = format!(
        "<svg viewBox=\"0 0 {CHART_W} {CHART_H}\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"{}\" font-family=\"DejaVu Sans, Arial, sans-serif\">\n",
        esc(title)
    );
    for (v, label) in &ticks {
        let y = PAD_T + plot_h - v / top * plot_h;
        let _ = writeln!(
            s,
            "<line x1=\"{PAD_L}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#d5dbe1\" stroke-width=\"0.8\"/><text x=\"{}\" y=\"{:.1}\" font-size=\"9\" text-anchor=\"end\" fill=\"#444\">{}</text>",
            CHART_W - PAD_R,
            PAD_L - 4.0,
            y + 3.0,
            esc(label)
        );
    }
    let band = plot_w / days.len().max(1) as f64;
    for (i, d) in days.iter().enumerate() {
        let x = PAD_L + band * (i as f64 + 0.5);
        let _ = writeln!(
            s,
            "<text x=\"{x:.1}\" y=\"{}\" font-size=\"8\" text-anchor=\"middle\" fill=\"#444\">{}</text>",
            CHART_H - 8.0,
            d.date.day()
        );
    }
    let _ = writeln!(
        s,
        "<line x1=\"{PAD_L}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#555\" stroke-width=\"1\"/>",
        CHART_W - PAD_R,
        PAD_T + plot_h,
        PAD_T + plot_h
    );
    (s, top, band)
}

fn y_of(v: f64, top: f64) -> f64 {
    let plot_h = CHART_H - PAD_T - PAD_B;
    PAD_T + plot_h - (v / top.max(1.0)) * plot_h
}

pub(super) fn size_chart(lang: Lang, days: &[Day]) -> String {
    let max = days.iter().filter_map(|d| d.size).max().unwrap_or(0);
    let title = lang.t("Taille du dépôt", "Repository size");
    let (mut s, top, band) = chart_frame(lang, days, max, title);
    let points: Vec<(f64, f64)> = days
        .iter()
        .enumerate()
        .filter_map(|(i, d)| {
            d.size
                .map(|v| (PAD_L + band * (i as f64 + 0.5), y_of(v as f64, top)))
        })
        .collect();
    if let (Some(first), Some(last)) = (points.first(), points.last()) {
        let line: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect();
        let base = y_of(0.0, top);
        let _ = writeln!(
            s,
            "<polygon points=\"{:.1},{base:.1} {} {:.1},{base:.1}\" fill=\"#cfe0f1\" stroke=\"none\"/>",
            first.0,
            line.join(" "),
            last.0
        );
        let _ = writeln!(
            s,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"#1f4e79\" stroke-width=\"2\"/>",
            line.join(" ")
        );
        for (x, y) in &points {
            let _ = writeln!(
                s,
                "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"2\" fill=\"#1f4e79\"/>"
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

pub(super) fn added_chart(lang: Lang, days: &[Day]) -> String {
    let max = days.iter().map(|d| d.added).max().unwrap_or(0);
    let title = lang.t("Données ajoutées par jour", "Data added per day");
    let (mut s, top, band) = chart_frame(lang, days, max, title);
    let base = y_of(0.0, top);
    for (i, d) in days.iter().enumerate() {
        let x = PAD_L + band * i as f64;
        let color = match d.status {
            Status::Ok => "#3a9a52",
            Status::Warning => "#e08a00",
            _ => "#9aa5b1",
        };
        if d.added > 0 {
            let y = y_of(d.added as f64, top);
            let _ = writeln!(
                s,
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{color}\"/>",
                x + band * 0.15,
                band * 0.7,
                (base - y).max(0.5)
            );
        }
        let mark = match d.status {
            Status::Failed => Some(("✗", "#b00000")),
            Status::Missing => Some(("?", "#b00000")),
            _ => None,
        };
        if let Some((m, c)) = mark {
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" font-weight=\"700\" text-anchor=\"middle\" fill=\"{c}\">{m}</text>",
                x + band * 0.5,
                base - 3.0
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_are_round() {
        let (top, ticks) = size_axis(Lang::En, 90 << 20);
        assert!(top >= (90u64 << 20) as f64);
        assert_eq!(ticks.first().map(|t| t.1.as_str()), Some("0 MiB"));
        assert_eq!(ticks.get(1).map(|t| t.1.as_str()), Some("25 MiB"));
        let (top, ticks) = size_axis(Lang::Fr, 0);
        assert!(top > 0.0 && !ticks.is_empty());
    }
}
