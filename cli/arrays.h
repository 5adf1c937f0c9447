// Arrays from and to files for the strata command: IDX (gzipped or not), NumPy .npy (float32, float64,
// uint8, int32, int64; C order; either byte order) and CSV with a header row.
#pragma once

#include <string>
#include <vector>

#include "api/array.h"

namespace strata::cli {

// An IDX or .npy file, chosen by its name (.npy; anything else is read as IDX). Errors name the path.
Array read_array_file(const std::string& path);

// The named columns of a CSV file with a header row, as a (rows, columns) float32 array; `columns` empty:
// every column except `exclude`. Errors name the file, the line and the column.
Array read_csv_columns(const std::string& path, std::vector<std::string> columns, const std::vector<std::string>& exclude = {});

Array read_npy(const std::string& path);
// float32 .npy, written atomically.
void write_npy(const std::string& path, const Array& array);
// A CSV file with a header (column_0, column_1, ...) and one row per sample, written atomically.
void write_csv(const std::string& path, const Array& array);

}  // namespace strata::cli
