// Reading Keras model and weight files, and .npy arrays. Kept apart from the
// kernel runtime so a user who brings their own arrays needs neither HDF5
// nor libzip.
#pragma once

#include <string>
#include <vector>

#include "mhac/mha.h"

namespace mhac::io {

// A MultiHeadAttention layer as stored by Keras: its constructor arguments
// and its weights in layer.get_weights() order (kernel before bias, query,
// key, [gate,] value, output; biases absent when use_bias is false, the gate
// present only with use_gate).
struct LoadedLayer {
    std::string name;  // the layer's name in the file
    LayerConfig config;
    std::vector<Tensor> weights;  // get_weights() order
    // build_config shapes when the file records them (empty otherwise); a
    // None (batch) dim is -1.
    Shape query_shape, value_shape, key_shape;
    std::string source;  // file (and dataset group) the weights came from

    // Views into `weights` in the runtime's form; valid while this lives.
    KerasWeights keras_weights() const;
};

// A Keras 3 `.keras` archive (zip: config.json + model.weights.h5). With
// several MultiHeadAttention layers in the model, `layer_name` picks one
// (an Error lists the names when it is empty or unknown).
LoadedLayer load_keras_archive(const std::string &path, const std::string &layer_name = {});

// A weights file plus the layer's config JSON (layer.get_config(), or the
// {"class_name": ..., "config": {...}} form). Accepts Keras 3
// `.weights.h5` and TF-era (tf.keras 2.x) `save_weights("x.h5")` files; the
// format is detected from the file's layout.
LoadedLayer load_weights_with_config(const std::string &weights_path,
                                     const std::string &config_json_path,
                                     const std::string &layer_name = {});

// Parses a MultiHeadAttention config (the get_config() dict as JSON text)
// into a LayerConfig, applying Keras's validation (spec section 1).
LayerConfig parse_layer_config(const std::string &json_text);

// .npy arrays (C order). Floats of any width load as float32 (as Keras casts
// inputs to the compute dtype); masks of any dtype load as bytes, non-zero =
// may attend. Errors name the file and what is wrong with it.
struct Mask {
    Shape shape;
    std::vector<uint8_t> data;
    MaskView view() const { return {data.data(), shape}; }
};
// Only regular files are read: a directory, device or FIFO is an Error
// naming it. The header is parsed as strictly as numpy.load parses it.
Tensor read_npy_floats(const std::string &path);
Mask read_npy_mask(const std::string &path);

// An output .npy file (float32, C order) that appears only when complete.
// The target must be absent or a regular file: a symbolic link, device,
// FIFO or directory is refused (an Error), never replaced. write() puts the
// data in a new temporary file next to the target (an O_EXCL name of its
// own, so no existing file is touched); commit() renames it over the
// target. Destroyed uncommitted, it removes the temporary file and leaves
// the target as it was. Checking the target at construction lets a caller
// refuse a bad output path before doing any work.
class NpyOutput {
public:
    explicit NpyOutput(std::string path);
    ~NpyOutput();
    NpyOutput(const NpyOutput &) = delete;
    NpyOutput &operator=(const NpyOutput &) = delete;

    const std::string &path() const { return path_; }
    void write(const Tensor &tensor);
    void commit();

private:
    std::string path_, temp_;
};

// NpyOutput(path).write(tensor), then commit(): a failed write leaves no
// partial file and the previous file (if any) in place.
void write_npy(const std::string &path, const Tensor &tensor);

}  // namespace mhac::io
