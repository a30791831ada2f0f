set -x
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1 YOLO_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total --format=csv
python3 -c "import onnxruntime as o; print('ORT', o.__version__, o.get_available_providers())"
python3 deploy/gpu/train_detector.py "$@" 2>&1 | grep -v "^ *[0-9]*/[0-9]* .*it/s\]" | tee $OUT/train.log
R=/tmp/vw/runs/$NAME; export YOLO_CONFIG_DIR=/tmp/vw/cfg
cp $R/results.csv $OUT/ ; cp $R/weights/best.pt $OUT/$NAME-best.pt ; cp $R/weights/last.pt $OUT/$NAME-last.pt
python3 -m bench.vision_bench --model $OUT/$NAME.onnx --images .gpu/vision/dataset/val/images --frames 59 --pt $R/weights/best.pt --device 0 --batches 1 8 2>&1 | tee $OUT/bench.txt
rm -f $OUT/$NAME.onnx
