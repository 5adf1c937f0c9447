#include "layers/registry.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <stdexcept>

#include "api/model_layer.h"
#include "layers/activation.h"
#include "layers/activation_layers.h"
#include "layers/activity_regularization.h"
#include "layers/attention.h"
#include "layers/adaptive_pooling.h"
#include "layers/batch_normalization.h"
#include "layers/categorical.h"
#include "layers/bidirectional.h"
#include "layers/conv.h"
#include "layers/conv_lstm.h"
#include "layers/convnext_layers.h"
#include "layers/conv_transpose.h"
#include "layers/dense.h"
#include "layers/einsum_dense.h"
#include "layers/depthwise_conv.h"
#include "layers/dropout.h"
#include "layers/flatten.h"
#include "layers/group_normalization.h"
#include "layers/input_layer.h"
#include "layers/embedding.h"
#include "layers/layer_normalization.h"
#include "layers/image_augmentation.h"
#include "layers/multi_head_attention.h"
#include "layers/noise.h"
#include "layers/normalization.h"
#include "layers/merging.h"
#include "layers/recurrent.h"
#include "layers/pooling.h"
#include "layers/rescaling.h"
#include "layers/rms_normalization.h"
#include "layers/resizing.h"
#include "layers/reshape.h"
#include "layers/separable_conv.h"
#include "layers/time_distributed.h"
#include "layers/up_sampling.h"
#include "layers/zero_padding.h"

namespace strata {

namespace {

using Factory = LayerPtr (*)(const Json&);

const std::map<std::string, Factory>& factories() {
  static const std::map<std::string, Factory> f = {
      {"Activation", &Activation::from_config}, {"Dense", &Dense::from_config}, {"EinsumDense", &EinsumDense::from_config},
      {"Dropout", &Dropout::from_config},       {"Flatten", &Flatten::from_config},
      {"InputLayer", &InputLayer::from_config}, {"Input", &InputLayer::from_config},  // keras.Input, for YAML
      {"Rescaling", &Rescaling::from_config},   {"Normalization", &Normalization::from_config},
      {"Resizing", &Resizing::from_config},     {"CenterCrop", &CenterCrop::from_config},
      {"RandomCrop", &RandomCrop::from_config},
      {"Discretization", &Discretization::from_config}, {"CategoryEncoding", &CategoryEncoding::from_config},
      {"AdaptiveAveragePooling1D", &AdaptiveAveragePooling1D::from_config},
      {"AdaptiveAveragePooling2D", &AdaptiveAveragePooling2D::from_config},
      {"AdaptiveAveragePooling3D", &AdaptiveAveragePooling3D::from_config},
      {"AdaptiveMaxPooling1D", &AdaptiveMaxPooling1D::from_config},
      {"AdaptiveMaxPooling2D", &AdaptiveMaxPooling2D::from_config},
      {"AdaptiveMaxPooling3D", &AdaptiveMaxPooling3D::from_config},
      {"Reshape", &Reshape::from_config},       {"Permute", &Permute::from_config},
      {"RepeatVector", &RepeatVector::from_config}, {"Identity", &Identity::from_config},
      {"ActivityRegularization", &ActivityRegularization::from_config},
      {"LayerScale", &LayerScale::from_config}, {"StochasticDepth", &StochasticDepth::from_config},
      {"GaussianNoise", &GaussianNoise::from_config}, {"GaussianDropout", &GaussianDropout::from_config}, {"AlphaDropout", &AlphaDropout::from_config},
      {"RandomFlip", &RandomFlip::from_config}, {"RandomContrast", &RandomContrast::from_config},
      {"RandomBrightness", &RandomBrightness::from_config},
      {"RandomTranslation", &RandomTranslation::from_config},
      {"RandomRotation", &RandomRotation::from_config},
      {"RandomZoom", &RandomZoom::from_config},
      {"Conv1D", &Conv1D::from_config},         {"Conv2D", &Conv2D::from_config}, {"Conv3D", &Conv3D::from_config},
      {"ConvLSTM1D", &ConvLSTM1D::from_config}, {"ConvLSTM2D", &ConvLSTM2D::from_config}, {"ConvLSTM3D", &ConvLSTM3D::from_config},
      {"MaxPooling1D", &MaxPooling1D::from_config}, {"MaxPooling2D", &MaxPooling2D::from_config},
      {"MaxPooling3D", &MaxPooling3D::from_config}, {"AveragePooling3D", &AveragePooling3D::from_config},
      {"GlobalAveragePooling3D", &GlobalAveragePooling3D::from_config}, {"GlobalMaxPooling3D", &GlobalMaxPooling3D::from_config},
      {"AveragePooling1D", &AveragePooling1D::from_config}, {"AveragePooling2D", &AveragePooling2D::from_config},
      {"GlobalAveragePooling1D", &GlobalAveragePooling1D::from_config},
      {"GlobalAveragePooling2D", &GlobalAveragePooling2D::from_config},
      {"GlobalMaxPooling1D", &GlobalMaxPooling1D::from_config}, {"GlobalMaxPooling2D", &GlobalMaxPooling2D::from_config},
      {"Conv1DTranspose", &Conv1DTranspose::from_config}, {"Conv2DTranspose", &Conv2DTranspose::from_config},
      {"Conv3DTranspose", &Conv3DTranspose::from_config},
      {"DepthwiseConv1D", &DepthwiseConv1D::from_config}, {"DepthwiseConv2D", &DepthwiseConv2D::from_config},
      {"SeparableConv1D", &SeparableConv1D::from_config}, {"SeparableConv2D", &SeparableConv2D::from_config},
      {"BatchNormalization", &BatchNormalization::from_config},
      {"Add", &Add::from_config},           {"Subtract", &Subtract::from_config},   {"Multiply", &Multiply::from_config},
      {"Average", &Average::from_config},   {"Maximum", &Maximum::from_config},     {"Minimum", &Minimum::from_config},
      {"Concatenate", &Concatenate::from_config}, {"Dot", &Dot::from_config},
      {"LayerNormalization", &LayerNormalization::from_config},
      {"GroupNormalization", &GroupNormalization::from_config}, {"UnitNormalization", &UnitNormalization::from_config}, {"Embedding", &Embedding::from_config},
      {"Masking", &Masking::from_config},
      {"Attention", &Attention::from_config}, {"AdditiveAttention", &AdditiveAttention::from_config}, {"MultiHeadAttention", &MultiHeadAttention::from_config}, {"GroupQueryAttention", &GroupQueryAttention::from_config}, {"Bidirectional", &Bidirectional::from_config}, {"TimeDistributed", &TimeDistributed::from_config},
      {"SimpleRNN", &SimpleRNN::from_config}, {"LSTM", &LSTM::from_config}, {"GRU", &GRU::from_config},
      {"RNN", &RNN::from_config},
      {"ZeroPadding1D", &ZeroPadding1D::from_config}, {"ZeroPadding2D", &ZeroPadding2D::from_config},
      {"ZeroPadding3D", &ZeroPadding3D::from_config}, {"Cropping3D", &Cropping3D::from_config}, {"UpSampling3D", &UpSampling3D::from_config},
      {"Cropping1D", &Cropping1D::from_config},       {"Cropping2D", &Cropping2D::from_config},
      {"UpSampling1D", &UpSampling1D::from_config},   {"UpSampling2D", &UpSampling2D::from_config},
      {"SpatialDropout1D", &SpatialDropout1D::from_config}, {"SpatialDropout2D", &SpatialDropout2D::from_config},
      {"SpatialDropout3D", &SpatialDropout3D::from_config},
      {"ReLU", &ReLU::from_config},           {"LeakyReLU", &LeakyReLU::from_config}, {"PReLU", &PReLU::from_config},
      {"ELU", &ELU::from_config},             {"Softmax", &Softmax::from_config},
      {"RMSNormalization", &RMSNormalization::from_config},
      // Keras's other names for the same classes (keras.layers.MaxPool2D is MaxPooling2D, ...).
      {"MaxPool1D", &MaxPooling1D::from_config}, {"MaxPool2D", &MaxPooling2D::from_config},
      {"AvgPool1D", &AveragePooling1D::from_config}, {"AvgPool2D", &AveragePooling2D::from_config},
      {"GlobalAvgPool1D", &GlobalAveragePooling1D::from_config}, {"GlobalAvgPool2D", &GlobalAveragePooling2D::from_config},
      {"GlobalMaxPool1D", &GlobalMaxPooling1D::from_config}, {"GlobalMaxPool2D", &GlobalMaxPooling2D::from_config},
      {"MaxPool3D", &MaxPooling3D::from_config}, {"AvgPool3D", &AveragePooling3D::from_config},
      {"GlobalAvgPool3D", &GlobalAveragePooling3D::from_config}, {"GlobalMaxPool3D", &GlobalMaxPooling3D::from_config},
      {"Convolution1D", &Conv1D::from_config}, {"Convolution2D", &Conv2D::from_config}, {"Convolution3D", &Conv3D::from_config},
      {"Convolution1DTranspose", &Conv1DTranspose::from_config}, {"Convolution2DTranspose", &Conv2DTranspose::from_config},
      {"Convolution3DTranspose", &Conv3DTranspose::from_config},
      {"SeparableConvolution1D", &SeparableConv1D::from_config}, {"SeparableConvolution2D", &SeparableConv2D::from_config},
  };
  return f;
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      const bool same = std::tolower(static_cast<unsigned char>(a[i - 1])) == std::tolower(static_cast<unsigned char>(b[j - 1]));
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (same ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

}  // namespace

std::string closest_match(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_distance = std::max<std::size_t>(2, word.size() / 3) + 1;
  for (const std::string& c : candidates) {
    const std::size_t d = edit_distance(word, c);
    if (d < best_distance) best_distance = d, best = c;
  }
  return best;
}

std::vector<std::string> registered_layers() {
  std::vector<std::string> names;
  for (const auto& [name, f] : factories()) names.push_back(name);
  return names;
}

LayerPtr layer_from_config(const std::string& class_name, const Json& config) {
  // A nested model, a layer of the model around it.
  if (class_name == "Sequential" || class_name == "Functional" || class_name == "Model") return ModelLayer::from_config(class_name, config);
  const auto it = factories().find(class_name);
  if (it == factories().end()) {
    const std::string suggestion = closest_match(class_name, registered_layers());
    throw std::invalid_argument(suggestion.empty() ? fmt::format("unknown layer '{}'", class_name)
                                                   : fmt::format("unknown layer '{}'; did you mean '{}'?", class_name, suggestion));
  }
  try {
    // The *_regularizer (activity_regularizer too) and *_constraint keys are read here for every layer and
    // attached after it is made.
    Json own = config;
    std::map<std::string, Regularizer> regularizers;
    std::map<std::string, ConstraintPtr> constraints;
    std::optional<Regularizer> activity;
    auto ends_with = [](const std::string& key, const std::string& suffix) {
      return key.size() > suffix.size() && key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    if (config.is_object())
      for (const auto& [key, value] : config.items()) {
        if (value.is_null()) continue;
        const std::string where = fmt::format("{}: {}", class_name, key);
        if (key == "activity_regularizer") {
          activity = regularizer_from_json(value, where);
        } else if (ends_with(key, "_regularizer")) {
          regularizers[key.substr(0, key.size() - 12)] = *regularizer_from_json(value, where);
        } else if (ends_with(key, "_constraint")) {
          constraints[key.substr(0, key.size() - 11)] = constraint_from_json(value, where);
        } else {
          continue;
        }
        own.erase(key);
      }
    LayerPtr layer = it->second(own);
    for (const auto& [key, regularizer] : regularizers) layer->set_regularizer(key, regularizer);
    for (const auto& [key, constraint] : constraints) layer->set_constraint(key, constraint);
    layer->set_activity_regularizer(activity);
    return layer;
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(fmt::format("{}: bad config: {}", class_name, e.what()));
  }
}

LayerPtr layer_from_json(const Json& serialized) {
  if (!serialized.is_object() || !serialized.contains("class_name") || !serialized.at("class_name").is_string())
    throw std::invalid_argument(fmt::format("a layer must be an object with a 'class_name', got {}", serialized.dump().substr(0, 200)));
  return layer_from_config(serialized.at("class_name").get<std::string>(),
                           serialized.contains("config") ? serialized.at("config") : Json::object());
}

}  // namespace strata
