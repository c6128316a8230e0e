"""The shared core every target uses: container contract, image build, labels, build context,
model-store settings, physical ids and component helpers."""
