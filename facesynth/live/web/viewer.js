// facesynth live viewer: RGBD frames from the WebSocket /ws -> a coloured point cloud in millimetres.
// Frame layout (facesynth/live/viewer_server.py): "FSV1", u32 LE header length, JSON header,
// padding, rgb (h*w*3 u8), depth (h*w u16 LE, header.depth_unit_mm per step, 0 = no point).
// Camera space of the crop (x right, y down, z forward, mm) is drawn as three.js x, -y, -z, so the
// first view, from the virtual camera's own position and field of view, shows the image itself.
import {
  Scene, PerspectiveCamera, WebGLRenderer, BufferGeometry, BufferAttribute, Points, PointsMaterial,
  Color, Group, ColorManagement, LinearSRGBColorSpace, OrbitControls, VRButton,
} from './vendor/three-viewer.min.js';

ColorManagement.enabled = false;            // the frame's colours go to the screen unchanged
const $ = (id) => document.getElementById(id);
const stats = { frames: 0, fps: 0, latency_ms: null, points: 0, seq: null, connected: false, errors: 0 };
window.viewerStats = stats;                 // read by tests and by anyone debugging in the console
window.viewer = {};                         // camera and controls, filled in below (console, scripted views)

const renderer = new WebGLRenderer({ antialias: false });
renderer.outputColorSpace = LinearSRGBColorSpace;
renderer.setPixelRatio(window.devicePixelRatio);
renderer.setSize(window.innerWidth, window.innerHeight);
renderer.xr.enabled = true;
renderer.xr.setReferenceSpaceType('local');  // origin = the head at session start: the face ~D0 ahead
document.body.appendChild(renderer.domElement);

const scene = new Scene();
scene.background = new Color(0x101418);
const face = new Group();
scene.add(face);
const camera = new PerspectiveCamera(40, window.innerWidth / window.innerHeight, 1, 20000);
const controls = new OrbitControls(camera, renderer.domElement);
controls.enableDamping = false;
Object.assign(window.viewer, { camera, controls });

const geometry = new BufferGeometry();
const material = new PointsMaterial({ size: 1, sizeAttenuation: true, vertexColors: true });
const cloud = new Points(geometry, material);
cloud.frustumCulled = false;
face.add(cloud);
let capacity = 0, positions = null, colors = null, lastCam = null, baseSize = 1;

function ensureCapacity(n) {
  if (n <= capacity) return;
  capacity = n;
  positions = new Float32Array(n * 3);
  colors = new Uint8Array(n * 3);
  geometry.setAttribute('position', new BufferAttribute(positions, 3));
  geometry.setAttribute('color', new BufferAttribute(colors, 3, true));
}

function cameraView(cam, h, stride) {
  // the crop's virtual camera: at the origin, looking at the face D0 away, the crop's field of view
  camera.fov = 2 * Math.atan((h * stride / 2) / cam.fy) * 180 / Math.PI;
  camera.position.set(0, 0, 0.001);
  controls.target.set(0, 0, -cam.d0_mm);
  camera.near = Math.max(1, cam.d0_mm / 20);
  camera.far = cam.d0_mm * 20;
  camera.updateProjectionMatrix();
  controls.update();
}

function applyPointSize() {
  // three.js scales a point by (canvas height / 2) / depth, without the field of view's
  // tan(fov / 2): dividing by it here makes `mm` the point's real size at its depth
  const k = parseFloat($('pointsize').value);
  const mm = baseSize * k;
  const tanHalf = Math.tan(camera.fov * Math.PI / 360);
  material.size = renderer.xr.isPresenting ? mm / 1000 : mm / tanHalf;
  $('pointsize_mm').textContent = mm.toFixed(2) + ' mm';
}
$('pointsize').addEventListener('input', applyPointSize);
$('reset').addEventListener('click', () => { if (lastCam) cameraView(lastCam.cam, lastCam.h, lastCam.stride); });

const recent = [];
function onFrame(buf) {
  const bytes = new Uint8Array(buf);
  if (buf.byteLength < 8 || String.fromCharCode(...bytes.subarray(0, 4)) !== 'FSV1') { stats.errors++; return; }
  const n = new DataView(buf).getUint32(4, true);
  const head = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const { h, w, stride, camera: cam } = head;
  const rgb = new Uint8Array(buf, head.rgb_offset, h * w * 3);
  const depth = new Uint16Array(buf, head.depth_offset, h * w);
  const unit = head.depth_unit_mm;
  ensureCapacity(h * w);
  let k = 0;
  for (let r = 0; r < h; r++) {
    const v = r * stride;
    for (let c = 0; c < w; c++) {
      const i = r * w + c, d = depth[i];
      if (d === 0) continue;
      const z = d * unit, u = c * stride;
      positions[3 * k] = (u - cam.cx) * z / cam.fx;
      positions[3 * k + 1] = -(v - cam.cy) * z / cam.fy;
      positions[3 * k + 2] = -z;
      colors[3 * k] = rgb[3 * i]; colors[3 * k + 1] = rgb[3 * i + 1]; colors[3 * k + 2] = rgb[3 * i + 2];
      k++;
    }
  }
  geometry.attributes.position.needsUpdate = true;
  geometry.attributes.color.needsUpdate = true;
  geometry.setDrawRange(0, k);
  if (!lastCam) {
    baseSize = head.point_size_mm;
    cameraView(cam, h, stride);
    applyPointSize();
    $('metric').textContent = cam.metric ? 'metric (mm)' : 'depth not metric';
  }
  lastCam = { cam, h, stride };
  const now = performance.now();
  recent.push(now);
  while (recent.length && recent[0] < now - 1000) recent.shift();
  stats.frames++;
  stats.seq = head.seq;
  stats.points = k;
  stats.fps = recent.length > 1 ? (recent.length - 1) * 1000 / (recent[recent.length - 1] - recent[0]) : 0;
  stats.latency_ms = Date.now() - head.t_recv * 1000;   // graph and page on one machine: one clock
  $('frames').textContent = stats.frames;
  $('fps').textContent = stats.fps.toFixed(1);
  $('latency').textContent = stats.latency_ms.toFixed(1) + ' ms';
  $('gen').textContent = head.gen_ms.toFixed(1) + ' ms' + (head.calibrating ? ' (calibrating)' : '');
  $('points').textContent = k;
}

function connect() {
  const ws = new WebSocket(`ws://${location.host}/ws`);
  ws.binaryType = 'arraybuffer';
  ws.onopen = () => { stats.connected = true; $('status').textContent = 'live'; $('status').className = 'ok'; };
  ws.onmessage = (ev) => { if (ev.data instanceof ArrayBuffer) onFrame(ev.data); };
  ws.onclose = () => {
    stats.connected = false;
    $('status').textContent = 'waiting for the graph'; $('status').className = 'bad';
    setTimeout(connect, 1000);
  };
}
connect();

if ('xr' in navigator) {                    // "Enter VR" only where the browser offers WebXR
  navigator.xr.isSessionSupported('immersive-vr').then((ok) => {
    if (!ok) return;
    document.body.appendChild(VRButton.createButton(renderer));
    renderer.xr.addEventListener('sessionstart', () => { face.scale.setScalar(0.001); applyPointSize(); });
    renderer.xr.addEventListener('sessionend', () => { face.scale.setScalar(1); applyPointSize(); });
  }).catch(() => {});
}

window.addEventListener('resize', () => {
  camera.aspect = window.innerWidth / window.innerHeight;
  camera.updateProjectionMatrix();
  renderer.setSize(window.innerWidth, window.innerHeight);
});
renderer.setAnimationLoop(() => { controls.update(); renderer.render(scene, camera); });
