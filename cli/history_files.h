// A fit's History as files: history.csv (epoch, then each logged value) and history.svg (one line per
// value over the epochs, for a browser), both written atomically.
#pragma once

#include <string>

#include "api/callbacks.h"

namespace strata::cli {

void write_history_csv(const std::string& path, const History& history);
void write_history_svg(const std::string& path, const History& history);

}  // namespace strata::cli
