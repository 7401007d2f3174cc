// A rolling time-series chart (uPlot) of the last few minutes, one sample per second.
import uPlot from "uplot";

const WINDOW = 300; // samples kept: five minutes at one per second

export class RollingChart {
  private plot: uPlot;
  private data: number[][];

  constructor(el: HTMLElement, series: { label: string; stroke: string }[], yLabel: string) {
    this.data = [[], ...series.map(() => [])];
    const width = Math.max(320, el.clientWidth || 800);
    this.plot = new uPlot(
      {
        width,
        height: 200,
        axes: [{}, { label: yLabel }],
        series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.stroke, width: 2, points: { show: false } }))],
        scales: { y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
      },
      this.data as uPlot.AlignedData,
      el,
    );
  }

  push(values: number[]): void {
    this.data[0].push(Date.now() / 1000);
    values.forEach((v, i) => this.data[i + 1].push(v));
    if (this.data[0].length > WINDOW) this.data.forEach((col) => col.shift());
    this.plot.setData(this.data as uPlot.AlignedData);
  }

  destroy(): void {
    this.plot.destroy();
  }
}
