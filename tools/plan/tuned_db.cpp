#include "tuned_db.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <tuple>

namespace mhac::tuned {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int kFormat = 1;
// A database file is a few entries per kernel; anything this large is not one.
constexpr std::uintmax_t kMaxFileBytes = 64u << 20;

// Reads the fields of one JSON object, naming the file and the field in
// every error; fields it was not asked for are errors too (typos).
class Fields {
public:
    Fields(const json &obj, std::string where) : obj_(obj), where_(std::move(where)) {
        if (!obj_.is_object()) fail("", "is not a JSON object");
    }

    [[noreturn]] void fail(const std::string &field, const std::string &what) const {
        throw DbError(where_ + (field.empty() ? "" : ": field '" + field + "'") + " " + what);
    }

    const json &at(const char *field) {
        seen_.push_back(field);
        auto it = obj_.find(field);
        if (it == obj_.end()) fail(field, "is missing");
        return *it;
    }

    std::string str(const char *field) {
        const json &v = at(field);
        if (!v.is_string()) fail(field, "must be a string, is " + std::string(v.type_name()));
        return v.get<std::string>();
    }

    std::string nonempty(const char *field) {
        std::string s = str(field);
        if (s.empty()) fail(field, "must not be empty");
        return s;
    }

    int count(const char *field) {
        const json &v = at(field);
        if (!v.is_number_integer() || v.get<long long>() < 0 || v.get<long long>() > (1 << 30)) {
            fail(field, "must be a non-negative integer, is " + v.dump());
        }
        return v.get<int>();
    }

    double number(const char *field) {
        const json &v = at(field);
        if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < 0) {
            fail(field, "must be a non-negative number, is " + v.dump());
        }
        return v.get<double>();
    }

    std::vector<std::string> strings(const char *field) {
        const json &v = at(field);
        if (!v.is_array()) fail(field, "must be a list of strings");
        std::vector<std::string> out;
        for (const json &s : v) {
            if (!s.is_string()) fail(field, "must be a list of strings, holds " + s.dump());
            out.push_back(s.get<std::string>());
        }
        return out;
    }

    void no_others() const {
        for (const auto &[key, value] : obj_.items()) {
            if (std::find(seen_.begin(), seen_.end(), key) == seen_.end()) {
                fail(key, "is not a field of the format");
            }
        }
    }

    const std::string &where() const { return where_; }

private:
    const json &obj_;
    std::string where_;
    std::vector<std::string> seen_;
};

// Target strings become file names: keep them to Halide's alphabet.
std::string checked_target(const std::string &target) {
    std::string t = canonical_target(target);
    for (char c : t) {
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) {
            throw TunedParamError("target '" + target + "' holds a character other than a-z0-9_-");
        }
    }
    return t;
}

// ISO 8601, at least the date: YYYY-MM-DD... (newest-wins compares the text).
bool is_iso_date(const std::string &d) {
    if (d.size() < 10 || d[4] != '-' || d[7] != '-') return false;
    for (int i : {0, 1, 2, 3, 5, 6, 8, 9}) {
        if (!std::isdigit(static_cast<unsigned char>(d[i]))) return false;
    }
    return true;
}

Timing parse_timing(const json &j, const std::string &where) {
    Fields f(j, where);
    Timing t;
    t.batch = f.count("batch");
    t.queries = f.count("queries");
    t.keys = f.count("keys");
    t.threads = f.count("threads");
    t.tuned_ms = f.number("tuned_ms");
    t.default_ms = f.number("default_ms");
    t.tuned_spread = f.number("tuned_spread");
    t.default_spread = f.number("default_spread");
    f.no_others();
    return t;
}

Entry parse_entry(const json &j, const std::string &where) {
    Fields f(j, where);
    Entry e;
    e.generator = f.nonempty("generator");
    e.config = f.nonempty("config");
    e.kernel_params = f.strings("kernel_params");
    for (const auto &p : e.kernel_params) {
        if (p.find('=') == std::string::npos)
            f.fail("kernel_params", "holds '" + p + "', not key=value");
    }
    if (kernel_key_params(e.kernel_params) != e.kernel_params) {
        f.fail("kernel_params", "must be sorted and hold no knob");
    }
    e.target = f.nonempty("target");
    try {
        if (checked_target(e.target) != e.target) {
            f.fail("target",
                   "'" + e.target + "' is not canonical: '" + canonical_target(e.target) + "'");
        }
    } catch (const TunedParamError &err) {
        f.fail("target", err.what());
    }
    e.bucket = f.nonempty("bucket");
    e.source_hash = f.nonempty("source_hash");
    e.halide_version = f.nonempty("halide_version");
    e.knobs = f.strings("knobs");
    sched::KnobOverrides check;
    for (const auto &k : e.knobs) {
        try {
            apply_knob(k, check);
        } catch (const TunedParamError &err) {
            f.fail("knobs", err.what());
        }
    }
    e.found_by = f.str("found_by");
    const json &timings = f.at("timings");
    if (!timings.is_array()) f.fail("timings", "must be a list of objects");
    for (size_t i = 0; i < timings.size(); i++) {
        e.timings.push_back(
            parse_timing(timings[i], where + ": timings[" + std::to_string(i) + "]"));
    }
    e.cpu = f.str("cpu");
    e.cores = f.count("cores");
    e.date = f.str("date");
    if (!is_iso_date(e.date)) f.fail("date", "must be an ISO 8601 date, is '" + e.date + "'");
    e.budget_s = f.number("budget_s");
    e.spent_s = f.number("spent_s");
    e.candidates = f.count("candidates");
    e.rejected = f.count("rejected");
    f.no_others();
    return e;
}

// Fields in the order of the struct (ordered_json), so a file reads like tuned_db.h.
nlohmann::ordered_json entry_json(const Entry &e) {
    nlohmann::ordered_json timings = nlohmann::ordered_json::array();
    for (const Timing &t : e.timings) {
        nlohmann::ordered_json o = {{"batch", t.batch},
                                    {"queries", t.queries},
                                    {"keys", t.keys},
                                    {"threads", t.threads},
                                    {"tuned_ms", t.tuned_ms},
                                    {"default_ms", t.default_ms},
                                    {"tuned_spread", t.tuned_spread},
                                    {"default_spread", t.default_spread}};
        timings.push_back(o);
    }
    return {{"generator", e.generator},
            {"config", e.config},
            {"kernel_params", e.kernel_params},
            {"target", e.target},
            {"bucket", e.bucket},
            {"source_hash", e.source_hash},
            {"halide_version", e.halide_version},
            {"knobs", e.knobs},
            {"found_by", e.found_by},
            {"timings", timings},
            {"cpu", e.cpu},
            {"cores", e.cores},
            {"date", e.date},
            {"budget_s", e.budget_s},
            {"spent_s", e.spent_s},
            {"candidates", e.candidates},
            {"rejected", e.rejected}};
}

auto sort_key(const Entry &e) {
    return std::tie(e.generator, e.config, e.kernel_params, e.bucket, e.source_hash,
                    e.halide_version, e.date);
}

std::string where_of(const Entry &e) {
    return (e.file.empty() ? std::string("entry") : e.file) + ": " + e.generator + " " + e.config +
           " " + e.target + " bucket " + e.bucket;
}

// CPU and CUDA ladders of one arch-bits-os are different machines: an entry
// for one says nothing to the other.
std::string machine_kind(const std::string &target) {
    const std::vector<std::string> parts = detail::split(target, '-');
    const bool cuda = std::find(parts.begin(), parts.end(), "cuda") != parts.end();
    if (parts.size() < 3) return target;  // not a target: matches no ladder level
    return parts[0] + "-" + parts[1] + "-" + parts[2] + (cuda ? "-cuda" : "");
}

std::string arch_bits_os(const std::string &target) {
    const std::vector<std::string> parts = detail::split(target, '-');
    if (parts.size() < 3) return target;  // not a target: matches no ladder level
    return parts[0] + "-" + parts[1] + "-" + parts[2];
}

}  // namespace

std::vector<std::string> kernel_key_params(const std::vector<std::string> &generator_params) {
    std::vector<std::string> out;
    for (const auto &p : generator_params) {
        const std::string key = p.substr(0, p.find('='));
        if (key != "tuned" && !find_knob(key)) out.push_back(p);
    }
    std::sort(out.begin(), out.end());
    return out;
}

Database load_file(const std::string &path) {
    std::error_code ec;
    const std::uintmax_t size = fs::file_size(path, ec);
    if (ec) throw DbError(path + ": cannot read: " + ec.message());
    if (size > kMaxFileBytes)
        throw DbError(path + ": " + std::to_string(size) + " bytes is too large");
    std::ifstream in(path, std::ios::binary);
    if (!in) throw DbError(path + ": cannot read");
    json doc;
    try {
        doc = json::parse(in);
    } catch (const json::exception &e) {
        throw DbError(path + ": not JSON: " + e.what());
    }
    Fields f(doc, path);
    const json &format = f.at("format");
    if (format != kFormat)
        f.fail("format", "must be " + std::to_string(kFormat) + ", is " + format.dump());
    const std::string target = f.nonempty("target");
    const json &entries = f.at("entries");
    if (!entries.is_array()) f.fail("entries", "must be a list");
    f.no_others();
    Database db;
    for (size_t i = 0; i < entries.size(); i++) {
        Entry e = parse_entry(entries[i], path + ": entries[" + std::to_string(i) + "]");
        if (e.target != target) {
            throw DbError(path + ": entries[" + std::to_string(i) + "]: field 'target' " +
                          e.target + " is not the file's target " + target);
        }
        e.file = path;
        for (const Entry &o : db.entries) {
            if (same_key(o, e)) {
                throw DbError(path + ": entries[" + std::to_string(i) +
                              "] has the key of an earlier entry (" + where_of(e) + ")");
            }
        }
        db.entries.push_back(std::move(e));
    }
    return db;
}

Database load_dir(const std::string &dir) {
    Database db;
    std::error_code ec;
    if (!fs::exists(dir, ec)) return db;
    if (!fs::is_directory(dir, ec)) throw DbError(dir + ": not a directory");
    std::vector<fs::path> files;
    for (const auto &f : fs::directory_iterator(dir, ec)) {
        if (f.path().extension() == ".json") files.push_back(f.path());
    }
    if (ec) throw DbError(dir + ": cannot list: " + ec.message());
    std::sort(files.begin(), files.end());
    for (const fs::path &file : files) {
        for (Entry &e : load_file(file.string()).entries) {
            for (const Entry &o : db.entries) {
                if (same_key(o, e)) {
                    throw DbError(e.file + ": " + where_of(e) + " has the key of an entry of " +
                                  o.file);
                }
            }
            db.entries.push_back(std::move(e));
        }
    }
    return db;
}

void save_dir(const Database &db, const std::string &dir) {
    std::map<std::string, std::vector<const Entry *>> by_target;
    for (const Entry &e : db.entries) {
        try {
            if (checked_target(e.target) != e.target) {
                throw DbError(where_of(e) + ": target is not canonical (canonical_target)");
            }
        } catch (const TunedParamError &err) {
            throw DbError(where_of(e) + ": " + err.what());
        }
        by_target[e.target].push_back(&e);
    }
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw DbError(dir + ": cannot create: " + ec.message());
    for (auto &[target, entries] : by_target) {
        std::sort(entries.begin(), entries.end(),
                  [](const Entry *a, const Entry *b) { return sort_key(*a) < sort_key(*b); });
        nlohmann::ordered_json doc = {
            {"format", kFormat}, {"target", target}, {"entries", nlohmann::ordered_json::array()}};
        for (const Entry *e : entries) doc["entries"].push_back(entry_json(*e));
        // Invalid UTF-8 (a CPU name) is replaced, not a crash.
        const std::string text = doc.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
        const fs::path path = fs::path(dir) / (target + ".json");
        std::ifstream old_in(path, std::ios::binary);
        std::stringstream old;
        old << old_in.rdbuf();
        if (old_in && old.str() == text) continue;
        std::ofstream out(path, std::ios::binary);
        out << text;
        if (!out) throw DbError(path.string() + ": cannot write");
    }
}

bool same_key(const Entry &a, const Entry &b) {
    return a.generator == b.generator && a.kernel_params == b.kernel_params &&
           a.target == b.target && a.bucket == b.bucket && a.source_hash == b.source_hash &&
           a.halide_version == b.halide_version;
}

void upsert(Database &db, Entry e) {
    for (Entry &o : db.entries) {
        if (same_key(o, e)) {
            o = std::move(e);
            return;
        }
    }
    db.entries.push_back(std::move(e));
}

Database merge(const std::vector<Database> &dbs) {
    Database out;
    for (const Database &db : dbs) {
        for (const Entry &e : db.entries) {
            auto it = std::find_if(out.entries.begin(), out.entries.end(),
                                   [&](const Entry &o) { return same_key(o, e); });
            if (it == out.entries.end()) {
                out.entries.push_back(e);
            } else if (e.date >= it->date) {
                *it = e;
            }
        }
    }
    return out;
}

bool Bucket::has_mask(const std::string &mask) const {
    if (!*masks) return true;
    std::istringstream list(masks);
    for (std::string m; std::getline(list, m, ',');) {
        if (m == mask) return true;
    }
    return false;
}

const Bucket *find_bucket(const std::string &name) {
    for (const Bucket &b : kBuckets) {
        if (name == b.name) return &b;
    }
    return nullptr;
}

Lookup lookup(const Database &db, const std::string &generator,
              const std::vector<std::string> &kernel_params, const std::vector<std::string> &ladder,
              const std::string &source_hash, const std::string &halide_version,
              const std::string &bucket) {
    std::vector<std::string> keys;
    for (const auto &t : ladder) keys.push_back(canonical_target(t));
    Lookup out;
    out.used.assign(ladder.size(), nullptr);
    std::vector<const Entry *> used_all(ladder.size(), nullptr);
    for (const Entry &e : db.entries) {
        if (e.generator != generator || e.kernel_params != kernel_params) continue;
        // Each entry is judged (and warned about) by the lookup of its own
        // bucket; entries of unknown buckets by the "all" lookup.
        const bool known_bucket = e.bucket == "all" || find_bucket(e.bucket);
        const bool mine = e.bucket == bucket || (!known_bucket && bucket == "all");
        if (!mine && !(e.bucket == "all" && bucket != "all")) continue;
        std::vector<std::string> ignored_warnings;
        std::vector<std::string> &warnings = mine ? out.warnings : ignored_warnings;
        const auto level = std::find(keys.begin(), keys.end(), e.target);
        if (level == keys.end()) {
            const bool same_machine_kind = std::any_of(
                keys.begin(), keys.end(),
                [&](const std::string &k) { return machine_kind(k) == machine_kind(e.target); });
            if (same_machine_kind) {
                warnings.push_back(where_of(e) + ": ignored: the target is not in the ladder");
            }
            continue;
        }
        std::string differs;
        if (e.source_hash != source_hash) {
            differs = "source hash " + e.source_hash + " (this build: " + source_hash + ")";
        }
        if (e.halide_version != halide_version) {
            differs += (differs.empty() ? "" : ", ") + std::string("Halide ") + e.halide_version +
                       " (this build: " + halide_version + ")";
        }
        if (!differs.empty()) {
            warnings.push_back(where_of(e) + ": ignored, stale: " + differs);
            continue;
        }
        if (!known_bucket) {
            std::string names = "all";
            for (const Bucket &b : kBuckets) names += std::string(", ") + b.name;
            warnings.push_back(where_of(e) + ": ignored: unknown bucket (" + names + ")");
            continue;
        }
        (e.bucket == bucket ? out.used : used_all)[level - keys.begin()] = &e;
    }
    for (size_t i = 0; i < ladder.size(); i++) {
        if (!out.used[i]) out.used[i] = used_all[i];
    }
    std::vector<TargetKnobs> per_target;
    for (size_t i = 0; i < ladder.size(); i++) {
        if (out.used[i] && !out.used[i]->knobs.empty()) {
            per_target.push_back({keys[i], out.used[i]->knobs});
        }
    }
    out.tuned_param = encode_tuned_param(per_target);
    return out;
}

std::string describe_level(const std::string &target, const Entry *used) {
    const std::string key = canonical_target(target);
    const std::string base = arch_bits_os(key);
    std::string s = (key == base ? key : key.substr(base.size() + 1)) + ": ";
    if (!used) return s + "hand defaults";
    if (used->knobs.empty()) s += "hand defaults won";
    for (size_t i = 0; i < used->knobs.size(); i++) s += (i ? "," : "") + used->knobs[i];
    s += " (" + used->date.substr(0, 10);
    double lo = 0, hi = 0;
    for (const Timing &t : used->timings) {
        if (t.tuned_ms <= 0) continue;
        const double x = t.default_ms / t.tuned_ms;
        lo = lo == 0 ? x : std::min(lo, x);
        hi = std::max(hi, x);
    }
    if (hi > 0) {
        char buf[48];
        if (hi - lo < 0.005) {
            std::snprintf(buf, sizeof buf, ", %.2fx", hi);
        } else {
            std::snprintf(buf, sizeof buf, ", %.2f-%.2fx", lo, hi);
        }
        s += buf;
    }
    return s + ")";
}

std::string describe_tuning(const std::vector<std::string> &ladder, const Lookup &lookup) {
    if (std::none_of(lookup.used.begin(), lookup.used.end(), [](const Entry *e) { return e; })) {
        return "hand defaults";
    }
    std::string s;
    for (size_t i = 0; i < ladder.size(); i++) {
        s += (i ? "; " : "") + describe_level(ladder[i], lookup.used[i]);
    }
    return s;
}

}  // namespace mhac::tuned
