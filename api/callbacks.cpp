#include "api/callbacks.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>

namespace strata {

void History::on_epoch_end(int e, const Logs& logs) {
  epoch.push_back(e);
  for (const auto& [key, value] : logs) history[key].push_back(value);
}

Progbar::Progbar(std::int64_t target, std::FILE* out, bool dynamic, bool one_line)
    : target_(target), out_(out), dynamic_(dynamic && !one_line), one_line_(one_line), start_(std::chrono::steady_clock::now()) {}

bool Progbar::is_dynamic(std::FILE* out) {
  if (const char* mode = std::getenv("STRATA_PROGBAR")) {
    if (std::strcmp(mode, "dynamic") == 0) return true;
    if (std::strcmp(mode, "plain") == 0) return false;
  }
  return isatty(fileno(out)) != 0;
}

namespace {

// Keras's Progbar._format_time.
std::string format_step_time(double seconds) {
  if (seconds >= 1 || seconds == 0) return fmt::format(" {:.0f}s/step", seconds);
  if (seconds >= 1e-3) return fmt::format(" {:.0f}ms/step", seconds * 1e3);
  return fmt::format(" {:.0f}us/step", seconds * 1e6);
}

std::string format_value(double v) {
  return std::abs(v) > 1e-3 ? fmt::format("{:.4f}", v) : fmt::format("{:.4e}", v);
}

}  // namespace

std::string Progbar::line(std::int64_t current, const Logs& logs, bool finalize, bool colour) const {
  using namespace std::chrono;
  const auto now = steady_clock::now();
  const double elapsed = duration<double>(now - start_).count();
  // As Keras: the first step (tracing, planning) is left out of the per-step estimate when possible.
  double per_step = 0;
  if (current == 1) per_step = elapsed;
  else if (current > 1 && have_first_step_) per_step = duration<double>(now - after_first_step_).count() / double(current - 1);
  else if (current > 0) per_step = elapsed / double(current);

  const auto bold = [&](const std::string& s) { return colour ? "\x1b[1m" + s + "\x1b[0m" : s; };
  const int digits = int(std::log10(double(std::max<std::int64_t>(target_, 1)))) + 1;
  // Training keys first, then validation keys, each alphabetical.
  const auto values = [&] {
    std::string text;
    for (int pass = 0; pass < 2; ++pass)
      for (const auto& [key, value] : logs)
        if ((key.rfind("val_", 0) == 0) == (pass == 1)) text += fmt::format(" - {}: {}", key, format_value(value));
    return text;
  };
  if (one_line_) return fmt::format("{:>{}}/{} - {:.0f}s -{}{}", current, digits, target_, elapsed, format_step_time(per_step), values());
  std::string out = bold(fmt::format("{:>{}}/{}", current, digits, target_)) + " ";
  const int width = 20;
  const int done = int(double(width) * double(current) / double(std::max<std::int64_t>(target_, 1)));
  std::string filled, rest;
  for (int i = 0; i < done; ++i) filled += "━";
  for (int i = done; i < width; ++i) rest += "━";
  if (colour) {
    if (done > 0) out += "\x1b[32m" + filled + "\x1b[0m";
    out += "\x1b[37m" + rest + "\x1b[0m";
  } else {
    out += filled + rest;
  }
  if (!finalize) {
    const double eta = per_step * double(target_ - current);
    std::string eta_text;
    if (eta > 3600) eta_text = fmt::format("{}:{:02d}:{:02d}", int(eta) / 3600, (int(eta) % 3600) / 60, int(eta) % 60);
    else if (eta > 60) eta_text = fmt::format("{}:{:02d}", int(eta) / 60, int(eta) % 60);
    else eta_text = fmt::format("{}s", int(eta));
    out += fmt::format(" {}", bold(eta_text));
  } else {
    out += fmt::format(" {}", bold(fmt::format("{:.0f}s", elapsed)));
  }
  out += format_step_time(per_step);
  return out + values();
}

void Progbar::update(std::int64_t current, const Logs& logs, bool finalize) {
  const auto now = std::chrono::steady_clock::now();
  if (current >= 1 && !have_first_step_) {
    have_first_step_ = true;
    after_first_step_ = now;
  }
  if (!dynamic_) {
    if (finalize) fmt::print(out_, "{}\n", line(current, logs, true, false));
    std::fflush(out_);
    return;
  }
  if (!finalize && now - last_update_ < std::chrono::milliseconds(50)) return;
  last_update_ = now;
  const std::string text = line(current, logs, finalize, true);
  const std::string plain = line(current, logs, finalize, false);
  // Count characters, not bytes (the bar is multi-byte), to blank what a longer previous line left.
  std::size_t width = 0;
  for (unsigned char c : plain) width += (c & 0xC0) != 0x80;
  std::string message = "\r" + text;
  if (previous_width_ > width) message += std::string(previous_width_ - width, ' ');
  if (finalize) message += "\n";
  previous_width_ = width;
  std::fputs(message.c_str(), out_);
  std::fflush(out_);
}

void ProgbarLogger::on_epoch_begin(int epoch, const Logs&) {
  if (params().verbose == 1 || params().verbose == 2) {
    fmt::print(out_, "Epoch {}/{}\n", epoch + 1, params().epochs);
    std::fflush(out_);
    bar_ = std::make_unique<Progbar>(params().steps, out_, Progbar::is_dynamic(out_), params().verbose == 2);
  }
}

void ProgbarLogger::on_train_batch_end(std::int64_t batch, const Logs& logs) {
  if (bar_ && batch + 1 < params().steps) bar_->update(batch + 1, logs, false);
}

void ProgbarLogger::on_epoch_end(int, const Logs& logs) {
  if (bar_) {
    bar_->update(params().steps, logs, true);
    bar_.reset();
  }
}

void ProgbarLogger::on_test_begin(const Logs&) {
  if (!in_fit_ && params().verbose == 1) bar_ = std::make_unique<Progbar>(test_steps_, out_, Progbar::is_dynamic(out_));
}

void ProgbarLogger::on_test_batch_end(std::int64_t batch, const Logs& logs) {
  if (!in_fit_ && bar_ && batch + 1 < test_steps_) bar_->update(batch + 1, logs, false);
}

void ProgbarLogger::on_test_end(const Logs& logs) {
  if (!in_fit_ && bar_) {
    bar_->update(test_steps_, logs, true);
    bar_.reset();
  }
}

void ProgbarLogger::on_predict_begin(const Logs&) {
  if (params().verbose == 1) bar_ = std::make_unique<Progbar>(test_steps_, out_, Progbar::is_dynamic(out_));
}

void ProgbarLogger::on_predict_batch_end(std::int64_t batch, const Logs&) {
  if (bar_ && batch + 1 < test_steps_) bar_->update(batch + 1, {}, false);
}

void ProgbarLogger::on_predict_end(const Logs&) {
  if (bar_) {
    bar_->update(test_steps_, {}, true);
    bar_.reset();
  }
}

}  // namespace strata
