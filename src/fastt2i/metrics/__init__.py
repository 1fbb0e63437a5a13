"""Image-generation metrics: FD/FID, KID, precision/recall, CLIP score and CMMD over pluggable feature networks;
upsampler metrics (patch FD, PSNR, SSIM, low-res consistency) in `fastt2i.metrics.upscale`.

Quick use:
    from fastt2i.metrics import evaluate, InceptionFeatures, CLIPFeatures
    ext = {"inception": InceptionFeatures.from_weights("pt_inception-2015-12-05-6726825d.pth"),
           "clip": CLIPFeatures.from_pretrained("/models/clip-vit-large-patch14-336")}
    evaluate("fd_inception,kid_inception,clipscore_clip,cmmd_clip", fake_batches, real_batches, num=10_000,
             extractors=ext, real_key={"dataset": dataset_fingerprint(path), "split": "train", "resolution": 64},
             run_dir="runs/exp1")
"""

from fastt2i.metrics.cache import cache_root, cached_stats, dataset_fingerprint, load_stats, save_stats, stats_key_hash
from fastt2i.metrics.clip import CLIPFeatures
from fastt2i.metrics.clip_score import ClipScoreAccumulator, caption_retrieval, clip_score, clip_score_per_sample
from fastt2i.metrics.dinov2 import DINOv2Features
from fastt2i.metrics.emoji import EmojiCLIPEvalFeatures, EmojiCLIPFeatures, EmojiNetFeatures
from fastt2i.metrics.evaluate import compute_real_stats, evaluate, split_batch
from fastt2i.metrics.extractors import EXTRACTORS, FeatureExtractor
from fastt2i.metrics.inception import FID_WEIGHTS_NAME, FID_WEIGHTS_URL, FIDInceptionV3, InceptionFeatures
from fastt2i.metrics.kernels import cmmd, kernel_inception_distance, polynomial_mmd2_unbiased
from fastt2i.metrics.precision_recall import knn_radii, precision_recall
from fastt2i.metrics.registry import METRICS, MetricSpec, count_tag, metric_record_name, parse_metrics, register_feature_metrics
from fastt2i.metrics.results import append_metrics, read_metrics
from fastt2i.metrics.stats import FeatureStats, frechet_distance, frechet_distance_stats
from fastt2i.metrics.upscale import (
    UPSCALE_METRICS, bicubic_upscale, crop_positions, evaluate_upscaler, evaluate_upscalers, lanczos_upscale,
    psnr_per_image, ssim_per_image,
)

__all__ = [
    "CLIPFeatures", "ClipScoreAccumulator", "DINOv2Features", "EmojiCLIPEvalFeatures", "EmojiCLIPFeatures", "EmojiNetFeatures", "EXTRACTORS", "FID_WEIGHTS_NAME", "FID_WEIGHTS_URL",
    "FIDInceptionV3", "FeatureExtractor", "FeatureStats", "InceptionFeatures", "METRICS", "MetricSpec",
    "append_metrics", "cache_root", "caption_retrieval", "cached_stats", "clip_score", "clip_score_per_sample", "cmmd",
    "compute_real_stats", "count_tag", "dataset_fingerprint", "evaluate", "frechet_distance", "frechet_distance_stats",
    "kernel_inception_distance", "knn_radii", "load_stats", "metric_record_name", "parse_metrics", "polynomial_mmd2_unbiased",
    "precision_recall", "read_metrics", "register_feature_metrics", "save_stats", "split_batch", "stats_key_hash",
    "UPSCALE_METRICS", "bicubic_upscale", "crop_positions", "evaluate_upscaler", "evaluate_upscalers",
    "lanczos_upscale", "psnr_per_image", "ssim_per_image",
]
