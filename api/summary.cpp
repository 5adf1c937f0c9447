// Model::summary: Keras 3's table, drawn as rich draws it (heavy head, a rule between rows).
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <map>
#include <set>

#include "api/model.h"

namespace strata {

namespace {

std::string thousands(std::int64_t n) {
  std::string digits = std::to_string(n), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// keras.src.utils.summary_utils.readable_memory_size
std::string readable_memory_size(double bytes) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB", "PB"};
  for (const char* unit : units) {
    if (bytes / 1024 < 1) return fmt::format("{:.2f} {}", bytes, unit);
    bytes /= 1024;
  }
  return fmt::format("{:.2f} PB", bytes);
}

std::size_t display_width(const std::string& s) {
  std::size_t w = 0;
  for (unsigned char c : s) w += (c & 0xC0) != 0x80;
  return w;
}

std::string repeat(const char* piece, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) out += piece;
  return out;
}

// rich's ratio_reduce: takes `total` off the widths in equal shares (Python's round-half-even).
std::vector<int> ratio_reduce(int total, std::vector<int> widths) {
  int remaining = total, ratio_left = int(widths.size());
  for (int& w : widths) {
    const double share = double(remaining) / double(ratio_left);
    const int distributed = std::min(w, int(std::nearbyint(share)));
    w -= distributed;
    remaining -= distributed;
    --ratio_left;
  }
  return widths;
}

// Wraps `text` into lines of at most `width` characters, breaking at spaces where possible.
std::vector<std::string> wrap(const std::string& text, std::size_t width) {
  std::vector<std::string> lines;
  std::string rest = text;
  while (display_width(rest) > width) {
    std::size_t cut = rest.rfind(' ', width);
    if (cut == std::string::npos || cut == 0) cut = width;
    lines.push_back(rest.substr(0, cut));
    rest = rest.substr(cut == width ? cut : cut + 1);
  }
  lines.push_back(rest);
  return lines;
}

int terminal_columns() {
  if (const char* c = std::getenv("COLUMNS")) {
    const int n = std::atoi(c);
    if (n > 0) return n;
  }
  winsize ws{};
  if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

}  // namespace

bool Model::is_chain() const {
  // Keras's "sequential_like": one input and output, every layer called once on at most one tensor, and
  // no tensor read by two calls.
  if (inputs_.size() != 1 || outputs_.size() != 1) return false;
  std::set<ValueId> consumed;
  std::set<const void*> layers_seen;
  for (const ModuleCall& call : inputs_[0].graph().calls()) {
    const bool ours = std::any_of(layers_.begin(), layers_.end(), [&](const LayerPtr& l) { return l.get() == call.module.get(); });
    if (!ours || call.inputs.empty()) continue;
    if (call.inputs.size() > 1 || !layers_seen.insert(call.module.get()).second || !consumed.insert(call.inputs[0]).second) return false;
  }
  return true;
}

std::string Model::summary_string(int line_length) {
  try {
    ensure_graph(nullptr);
  } catch (const std::invalid_argument&) {
    // Not built yet: the table says so, as Keras's does.
  }
  const bool sequential = class_name() == "Sequential" || is_chain();
  std::vector<std::string> header = {"Layer (type)", "Output Shape", "Param #"};
  std::vector<double> positions = {0.45, 0.80, 1.0};
  int default_length = 88;
  if (!sequential) {
    header.push_back("Connected to");
    positions = {0.3, 0.56, 0.74, 1.0};
    default_length = 108;
  }
  // Keras: min(default, terminal width - 4); print_fn or no terminal means 80 columns.
  const int length = line_length > 0 ? line_length : std::min(default_length, terminal_columns() - 4);
  std::vector<int> widths;
  int current = 0;
  for (double p : positions) {
    const int w = int(p * length) - current;
    widths.push_back(w + 2);  // plus rich's padding of one space each side
    current += w;
  }
  // The table is `length` wide including its borders: rich shrinks the columns to fit.
  int total = int(widths.size()) + 1;
  for (int w : widths) total += w;
  if (total > length) widths = ratio_reduce(total - length, widths);

  std::vector<std::vector<std::string>> rows;
  std::vector<LayerPtr> shown;
  if (class_name() != "Sequential")
    for (const auto& in : input_layers_) shown.push_back(in);
  for (const auto& l : layers_)
    if (std::find(shown.begin(), shown.end(), l) == shown.end()) shown.push_back(l);
  for (const auto& layer : shown) {
    const auto input = std::dynamic_pointer_cast<InputLayer>(layer);
    std::string shape = input ? input->batch_shape().to_string() : layer->built() ? layer->output_shape().to_string() : "?";
    if (!input && layer->built() && layer->output_shapes().size() > 1) {
      // A layer of several outputs: Keras lists every shape.
      std::vector<std::string> shapes;
      for (const Shape& s : layer->output_shapes()) shapes.push_back(s.to_string());
      shape = fmt::format("[{}]", fmt::join(shapes, ", "));
    }
    const std::string params = input || layer->built() ? thousands(layer->count_params()) : std::string("0 (unbuilt)");
    std::vector<std::string> row = {fmt::format("{} ({})", layer->name(), layer->class_name()), shape, params};
    if (!sequential) {
      // Keras's "Connected to": for every call of the layer, each input as producer[node][tensor], where
      // node counts the producer's calls and tensor is the output's position.
      std::string connections;
      if (!outputs_.empty()) {
        const auto calls = outputs_[0].graph().calls();
        for (const ModuleCall& call : calls) {
          if (call.module.get() != static_cast<const void*>(layer.get())) continue;
          for (ValueId v : call.inputs) {
            std::map<const void*, int> node_of;
            for (const ModuleCall& producer : calls) {
              const int node = node_of[producer.module.get()]++;
              const auto out = std::find(producer.outputs.begin(), producer.outputs.end(), v);
              if (out == producer.outputs.end()) continue;
              const auto* inbound = static_cast<const Layer*>(producer.module.get());
              // A nested functional model's calls count from 1, as in Keras's configs.
              const int shown = node + (inbound->class_name() == "Functional" ? 1 : 0);
              connections += fmt::format("{}{}[{}][{}]", connections.empty() ? "" : ", ", inbound->name(), shown,
                                         out - producer.outputs.begin());
            }
          }
        }
      }
      row.push_back(connections.empty() ? "-" : connections);
    }
    rows.push_back(std::move(row));
  }

  auto rule = [&](const char* left, const char* fill, const char* mid, const char* right) {
    std::string s = left;
    for (std::size_t c = 0; c < widths.size(); ++c) s += repeat(fill, std::size_t(widths[c])) + (c + 1 < widths.size() ? mid : right);
    return s + "\n";
  };
  auto cells = [&](const std::vector<std::string>& values, const char* bar) {
    std::vector<std::vector<std::string>> wrapped;
    std::size_t height = 1;
    for (std::size_t c = 0; c < values.size(); ++c) {
      wrapped.push_back(wrap(values[c], std::size_t(widths[c] - 2)));
      height = std::max(height, wrapped.back().size());
    }
    std::string s;
    for (std::size_t line = 0; line < height; ++line) {
      s += bar;
      for (std::size_t c = 0; c < values.size(); ++c) {
        const std::string text = line < wrapped[c].size() ? wrapped[c][line] : "";
        const std::size_t pad = std::size_t(widths[c] - 2) - display_width(text);
        // Param # is right-aligned, header included, as in Keras.
        const bool right = c == 2;
        s += right ? fmt::format(" {}{} {}", std::string(pad, ' '), text, bar) : fmt::format(" {}{} {}", text, std::string(pad, ' '), bar);
      }
      s += "\n";
    }
    return s;
  };

  std::int64_t trainable = 0, non_trainable = 0;
  for (const auto& w : weights()) (w->trainable() ? trainable : non_trainable) += w->shape().numel();
  std::string out = fmt::format("Model: \"{}\"\n", name_);
  out += rule("┏", "━", "┳", "┓");
  out += cells(header, "┃");
  out += rule("┡", "━", "╇", "┩");
  for (std::size_t r = 0; r < rows.size(); ++r) {
    out += cells(rows[r], "│");
    if (r + 1 < rows.size()) out += rule("├", "─", "┼", "┤");
  }
  out += rule("└", "─", "┴", "┘");
  const std::int64_t optimizer_count = compiled_ && options_.optimizer.get() ? options_.optimizer.get()->state_size() : 0;
  const std::int64_t total_count = trainable + non_trainable + optimizer_count;
  out += fmt::format(" Total params: {} ({})\n", thousands(total_count), readable_memory_size(4.0 * double(total_count)));
  out += fmt::format(" Trainable params: {} ({})\n", thousands(trainable), readable_memory_size(4.0 * double(trainable)));
  out += fmt::format(" Non-trainable params: {} ({})\n", thousands(non_trainable), readable_memory_size(4.0 * double(non_trainable)));
  if (optimizer_count > 0)
    out += fmt::format(" Optimizer params: {} ({})\n", thousands(optimizer_count), readable_memory_size(4.0 * double(optimizer_count)));
  return out;
}

void Model::summary(int line_length, std::FILE* out) {
  const std::string s = summary_string(line_length);
  std::fputs(s.c_str(), out);
  std::fflush(out);
}

}  // namespace strata
