#include "cli/history_files.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <stdexcept>

#include "io/atomic_file.h"

namespace strata::cli {

namespace {

void write_atomically(const std::string& path, const std::string& text) {
  io::AtomicFile file(path);
  {
    std::ofstream out(file.temp_path(), std::ios::binary);
    out << text;
    if (!out) throw std::runtime_error(fmt::format("{}: cannot write the file", path));
  }
  file.commit();
}

std::size_t epochs_of(const History& h) {
  std::size_t n = 0;
  for (const auto& [key, values] : h.history) n = std::max(n, values.size());
  return n;
}

}  // namespace

void write_history_csv(const std::string& path, const History& history) {
  std::string text = "epoch";
  for (const auto& [key, values] : history.history) text += "," + key;
  text += "\n";
  for (std::size_t e = 0; e < epochs_of(history); ++e) {
    text += fmt::format("{}", e);
    for (const auto& [key, values] : history.history) text += e < values.size() ? fmt::format(",{:.6g}", values[e]) : std::string(",");
    text += "\n";
  }
  write_atomically(path, text);
}

void write_history_svg(const std::string& path, const History& history) {
  // Losses and the other values have different ranges: two panels, each scaled to its own.
  const int width = 720, panel = 240, left = 60, right = 180, top = 20, gap = 40;
  const char* colours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};
  const std::size_t epochs = epochs_of(history);
  std::string svg = fmt::format(R"(<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="12">)",
                                width, top + 2 * panel + gap + 30);
  svg += "\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  for (int p = 0; p < 2; ++p) {
    const bool losses = p == 0;
    std::vector<std::pair<std::string, const std::vector<double>*>> series;
    for (const auto& [key, values] : history.history)
      if ((key.find("loss") != std::string::npos) == losses) series.emplace_back(key, &values);
    const int y0 = top + p * (panel + gap);
    const int plot_w = width - left - right;
    double lo = 1e300, hi = -1e300;
    for (const auto& s : series)
      for (double v : *s.second)
        if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
    if (series.empty() || lo > hi) lo = 0, hi = 1;
    if (hi - lo < 1e-12) hi = lo + 1;
    svg += fmt::format("<text x=\"{}\" y=\"{}\" font-weight=\"bold\">{}</text>\n", left, y0 + 12, losses ? "loss" : "metrics");
    svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#999\"/>\n", left, y0 + 20, plot_w, panel - 40);
    svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{:.4g}</text>\n", left - 4, y0 + 24, hi);
    svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{:.4g}</text>\n", left - 4, y0 + panel - 20, lo);
    svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">epoch</text>\n", left + plot_w / 2, y0 + panel - 4);
    auto px = [&](std::size_t e) { return left + (epochs > 1 ? double(e) * plot_w / double(epochs - 1) : plot_w / 2.0); };
    auto py = [&](double v) { return y0 + 20 + (hi - v) / (hi - lo) * (panel - 40); };
    for (std::size_t k = 0; k < series.size(); ++k) {
      const char* colour = colours[k % 8];
      std::string points;
      for (std::size_t e = 0; e < series[k].second->size(); ++e)
        if (std::isfinite((*series[k].second)[e])) points += fmt::format("{:.1f},{:.1f} ", px(e), py((*series[k].second)[e]));
      svg += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>\n", colour, points);
      svg += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"{}\">{}</text>\n", width - right + 10, y0 + 36 + 16 * int(k), colour, series[k].first);
    }
  }
  svg += "</svg>\n";
  write_atomically(path, svg);
}

}  // namespace strata::cli
