// `mhac run`: one Keras MultiHeadAttention call from files. A contract other
// tools rely on (README, docs/cli.md): keep its flags and behaviour stable.
#include "run_command.h"

#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "mhac/keras_io.h"
#include "mhac/kernel_set_default_set.h"
#include "mhac/mha.h"

namespace mhac::cli {

namespace {

const char *kUsage =
    "usage: mhac run (--model M.keras [--layer NAME] | --weights W.h5 --config LAYER.json)\n"
    "                --query Q.npy --value V.npy [--key K.npy]\n"
    "                [--attention-mask M.npy] [--query-mask QM.npy] [--value-mask VM.npy]\n"
    "                [--key-mask KM.npy] [--causal] [--training --seed N]\n"
    "                --out OUT.npy [--scores-out SCORES.npy]\n";

struct Args {
    std::map<std::string, std::string> values;
    std::set<std::string> flags;
    bool has(const std::string &k) const { return values.count(k) || flags.count(k); }
    std::string get(const std::string &k) const {
        auto it = values.find(k);
        return it == values.end() ? std::string() : it->second;
    }
};

Args parse(int argc, char **argv) {
    static const std::set<std::string> with_value = {
        "--model", "--layer",          "--weights",    "--config",     "--query",    "--value",
        "--key",   "--attention-mask", "--query-mask", "--value-mask", "--key-mask", "--seed",
        "--out",   "--scores-out"};
    static const std::set<std::string> switches = {"--causal", "--training"};
    Args a;
    for (int i = 0; i < argc; i++) {
        std::string f = argv[i];
        if (with_value.count(f)) {
            if (i + 1 >= argc) throw Error(f + " needs a value");
            if (a.values.count(f)) throw Error(f + " given twice");
            a.values[f] = argv[++i];
        } else if (switches.count(f)) {
            a.flags.insert(f);
        } else {
            throw Error("unknown argument '" + f + "'");
        }
    }
    const bool model = a.has("--model"), weights = a.has("--weights") || a.has("--config");
    if (model == weights) {
        throw Error("give either --model M.keras or --weights W.h5 --config LAYER.json");
    }
    if (weights && !(a.has("--weights") && a.has("--config"))) {
        throw Error("--weights and --config go together");
    }
    if (a.has("--layer") && !model) throw Error("--layer selects a layer of a --model archive");
    for (const char *req : {"--query", "--value", "--out"}) {
        if (!a.has(req)) throw Error(std::string(req) + " is required");
    }
    if (a.has("--seed") && !a.has("--training")) throw Error("--seed goes with --training");
    if (a.has("--out") && a.get("--out") == a.get("--scores-out")) {
        throw Error("--out and --scores-out name the same file");
    }
    return a;
}

uint64_t parse_seed(const std::string &s) {
    // Digits only (strtoull would also take spaces, '+' and '-', and clamps
    // an out-of-range value to the maximum).
    const std::string expected = "--seed must be an integer from 0 to " +
                                 std::to_string(std::numeric_limits<uint64_t>::max()) + ", got '" +
                                 (s.size() > 40 ? s.substr(0, 40) + "..." : s) + "'";
    if (s.empty() || s.size() > 20) throw Error(expected);
    uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') throw Error(expected);
        if (__builtin_mul_overflow(v, uint64_t{10}, &v) ||
            __builtin_add_overflow(v, uint64_t(c - '0'), &v))
            throw Error(expected);
    }
    return v;
}

// One line: control characters (a newline in a layer name read from a file)
// escaped, so the error is always exactly one line on stderr.
std::string one_line(const std::string &message) {
    std::string out;
    for (char c : message) {
        const unsigned char u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", u);
            out += buf;
        } else {
            out += c;
        }
    }
    return out;
}

}  // namespace

int run_command(int argc, char **argv) {
    if (argc == 1 && std::string(argv[0]) == "--help") {
        std::fputs(kUsage, stdout);
        return 0;
    }
    try {
        Args a = parse(argc, argv);
        // Output paths first: a symlink, device or missing directory is
        // refused before any work. Nothing appears at either path until both
        // outputs are complete.
        io::NpyOutput out(a.get("--out"));
        std::optional<io::NpyOutput> scores_out;
        if (a.has("--scores-out")) scores_out.emplace(a.get("--scores-out"));
        io::LoadedLayer loaded =
            a.has("--model") ? io::load_keras_archive(a.get("--model"), a.get("--layer"))
                             : io::load_weights_with_config(a.get("--weights"), a.get("--config"));
        LayerConfig config = loaded.config;
        if (a.has("--seed")) config.seed = parse_seed(a.get("--seed"));

        Tensor query = io::read_npy_floats(a.get("--query"));
        Tensor value = io::read_npy_floats(a.get("--value"));
        std::optional<Tensor> key;
        if (a.has("--key")) key = io::read_npy_floats(a.get("--key"));
        std::map<std::string, io::Mask> masks;
        for (const char *m : {"--attention-mask", "--query-mask", "--value-mask", "--key-mask"}) {
            if (a.has(m)) masks[m] = io::read_npy_mask(a.get(m));
        }

        MultiHeadAttention layer(config, kernel_sets::default_set());
        layer.set_weights(loaded.keras_weights());
        CallOptions opts;
        TensorView key_view;
        if (key) {
            key_view = key->view();
            opts.key = &key_view;
        }
        std::map<std::string, MaskView> views;
        for (auto &[name, m] : masks) views[name] = m.view();
        auto mask = [&](const char *name) {
            auto it = views.find(name);
            return it == views.end() ? nullptr : &it->second;
        };
        opts.attention_mask = mask("--attention-mask");
        opts.query_mask = mask("--query-mask");
        opts.value_mask = mask("--value-mask");
        opts.key_mask = mask("--key-mask");
        opts.use_causal_mask = a.has("--causal");
        opts.training = a.has("--training");
        opts.return_attention_scores = a.has("--scores-out");

        CallResult r = layer.call(query.view(), value.view(), opts);
        out.write(r.output);
        if (scores_out) scores_out->write(r.scores);
        if (scores_out) scores_out->commit();
        out.commit();
        return 0;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "mhac run: error: %s\n", one_line(e.what()).c_str());
        return 1;
    }
}

}  // namespace mhac::cli
