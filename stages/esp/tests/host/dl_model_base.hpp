// Host stand-in for ESP-DL's dl_model_base.hpp (dl::Model): constructed from a path (as ESP-DL's
// MODEL_LOCATION_IN_SDCARD is), get_inputs() / get_outputs() as maps of name -> TensorBase*, run().
// Instead of computing a network, a stand-in model replays the integer test vectors esp-ppq's
// simulation produced (stages/esp/tests/test_host_chain.py writes them): run() counts how many
// elements of its input differ from what the simulation fed this model, then writes the
// simulated output. So the chain glue is compiled and checked here, bit for bit.
#pragma once
#include <cstdint>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>
#include "dl_tensor_base.hpp"

namespace fbs {
typedef enum { MODEL_LOCATION_IN_FLASH_RODATA = 0, MODEL_LOCATION_IN_FLASH_PARTITION = 1, MODEL_LOCATION_IN_SDCARD = 2 } model_location_type_t;
}

namespace dl {

class Model {
public:
    // vector file: "input <name> <exponent> <bits> <rank> <dims...>\n<ints...>\n" then the outputs alike
    Model(const char *path, fbs::model_location_type_t location = fbs::MODEL_LOCATION_IN_SDCARD) : mismatches(0), runs(0)
    {
        std::ifstream f(path);
        if (!f) {
            throw std::runtime_error(std::string("cannot open ") + path);
        }
        std::string kind, name;
        while (f >> kind >> name) {
            int exponent, bits, rank;
            f >> exponent >> bits >> rank;
            std::vector<int> shape(rank);
            for (int &d : shape) {
                f >> d;
            }
            TensorBase *t = new TensorBase(shape, exponent, bits == 16 ? DATA_TYPE_INT16 : DATA_TYPE_INT8);
            std::vector<int> &ref = (kind == "input" ? expected_in[name] : expected_out[name]);
            ref.resize(t->get_size());
            for (int &v : ref) {
                f >> v;
            }
            (kind == "input" ? inputs : outputs)[name] = t;
        }
    }
    ~Model()
    {
        for (auto &kv : inputs) delete kv.second;
        for (auto &kv : outputs) delete kv.second;
    }
    std::map<std::string, TensorBase *> get_inputs() { return inputs; }
    std::map<std::string, TensorBase *> get_outputs() { return outputs; }
    void run()
    {
        runs++;
        for (auto &kv : inputs) {
            const std::vector<int> &want = expected_in[kv.first];
            for (int i = 0; i < kv.second->get_size(); i++) {
                int got = kv.second->get_dtype() == DATA_TYPE_INT16 ? kv.second->get_element_ptr<int16_t>()[i]
                                                                    : kv.second->get_element_ptr<int8_t>()[i];
                mismatches += got != want[i];
            }
        }
        for (auto &kv : outputs) {
            const std::vector<int> &v = expected_out[kv.first];
            for (int i = 0; i < kv.second->get_size(); i++) {
                if (kv.second->get_dtype() == DATA_TYPE_INT16) {
                    kv.second->get_element_ptr<int16_t>()[i] = (int16_t)v[i];
                } else {
                    kv.second->get_element_ptr<int8_t>()[i] = (int8_t)v[i];
                }
            }
        }
    }
    void set_input_from_vectors()   // stand-in only: the simulation's input (the chain's first frame)
    {
        for (auto &kv : inputs) {
            for (int i = 0; i < kv.second->get_size(); i++) {
                if (kv.second->get_dtype() == DATA_TYPE_INT16) {
                    kv.second->get_element_ptr<int16_t>()[i] = (int16_t)expected_in[kv.first][i];
                } else {
                    kv.second->get_element_ptr<int8_t>()[i] = (int8_t)expected_in[kv.first][i];
                }
            }
        }
    }
    long mismatches;
    int runs;

private:
    std::map<std::string, TensorBase *> inputs, outputs;
    std::map<std::string, std::vector<int>> expected_in, expected_out;
};

}  // namespace dl
