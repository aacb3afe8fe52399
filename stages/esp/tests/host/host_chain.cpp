// Host driver for the generated firmware's chain glue (jmmc_chain.hpp): three stand-in models
// replaying esp-ppq's simulated integers; prints per-model input mismatches and the clip count.
#include <cstdio>
#include <cstdlib>
#include "jmmc_chain.hpp"

int main(int argc, char **argv)
{
    if (argc != 5) {
        std::fprintf(stderr, "usage: host_chain enhancer.vec denoiser.vec yunet.vec scale_of_the_detector\n");
        return 2;
    }
    dl::Model enhancer(argv[1]), denoiser(argv[2]), yunet(argv[3]);
    dl::Model *models[] = {&enhancer, &denoiser, &yunet};
    const float scales[] = {1.0f, 1.0f, (float)std::atof(argv[4])};
    enhancer.set_input_from_vectors();
    int clipped = jmmc::run_chain(models, scales, 3);
    std::printf("JMMC host_chain clipped=%d mismatches enhancer=%ld denoiser=%ld yunet=%ld runs=%d,%d,%d\n", clipped,
                enhancer.mismatches, denoiser.mismatches, yunet.mismatches, enhancer.runs, denoiser.runs, yunet.runs);
    return clipped < 0 || enhancer.mismatches || denoiser.mismatches || yunet.mismatches ? 1 : 0;
}
